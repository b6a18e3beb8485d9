//go:build !linux

package webhook

import "time"

// sleepExact waits d.
func sleepExact(d time.Duration) { time.Sleep(d) }
