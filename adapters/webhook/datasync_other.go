//go:build !linux

package webhook

import "os"

// datasync flushes f to stable storage. Tests replace it to hold or skip
// the flush.
var datasync = func(f *os.File) error { return f.Sync() }
