//go:build !linux

package runtime

// ReleaseStartupCode does nothing outside Linux: it returns 0.
func ReleaseStartupCode() (int64, error) { return 0, nil }
