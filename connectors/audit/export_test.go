package audit

// SetRunSize makes s index the ids of a SQLite log in runs of n, so that
// tests reach runs and merges with few events.
func SetRunSize(s *Sink, n int) { s.runSize = n }
