package runtime

import "time"

// SetSinkTimings shortens the circuit breaker and the Open backoff of every
// sink of r, for tests: failures results in a row open the circuit, the
// first probe follows after probe, doubling up to maxProbe. Call it before
// Run.
func SetSinkTimings(r *Runtime, failures int, probe, maxProbe time.Duration) {
	for _, s := range r.sinks {
		s.tuning = sinkTuning{
			failures: failures,
			probe:    probe,
			maxProbe: maxProbe,
			open:     Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond},
		}
	}
}
