package lifecycle

// SetCrashPoint makes tr's snapshots call fn at each step of their
// writing ("writing", "written", "renamed"); an error from fn stops the
// writing there, leaving the files as a crash at that step would.
func SetCrashPoint(tr *Tracker, fn func(step string) error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.crash = fn
}
