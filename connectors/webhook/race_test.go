//go:build race

package webhook_test

// raceEnabled is true when the tests run with the race detector, under
// which sync.Pool drops a quarter of what is put back, so that pooled
// states are allocated again at random.
const raceEnabled = true
