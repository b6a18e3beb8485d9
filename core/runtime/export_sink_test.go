package runtime

import "time"

// SetSinkTimings shortens the circuit breaker and the Open backoff of every
// sink of r, for tests: failures results in a row open the circuit, the
// first probe follows after probe, doubling up to maxProbe. Call it before
// Run.
func SetSinkTimings(r *Runtime, failures int, probe, maxProbe time.Duration) {
	for _, s := range r.sinks {
		s.tuning.failures = failures
		s.tuning.probe = probe
		s.tuning.maxProbe = maxProbe
		s.tuning.open = Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	}
}

// SetSinkParkAfter sets the shortest retry wait that parks a key in the
// retry store, for every sink of r. Call it before Run.
func SetSinkParkAfter(r *Runtime, d time.Duration) {
	for _, s := range r.sinks {
		s.tuning.parkAfter = d
	}
}
