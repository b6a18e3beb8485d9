package poll

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a run, as tributary_poll_duration_seconds labels them.
const (
	OutcomeSuccess = "success"
	OutcomeError   = "error"
)

// metrics are one polling connector's series, labelled with its name.
type metrics struct {
	reg      prometheus.Registerer
	name     string
	last     prometheus.Gauge
	duration *prometheus.HistogramVec
}

// newMetrics registers the series of connector on reg (nil: none are
// exported). Series a previous Open of the same connector registered are
// reused, so that a reopened source keeps its history.
func newMetrics(reg prometheus.Registerer, connector string) (*metrics, error) {
	labels := prometheus.Labels{"connector": connector}
	m := &metrics{reg: reg, name: connector}
	var errs []error
	var err error
	m.last, err = Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tributary_poll_last_success_timestamp_seconds", ConstLabels: labels,
		Help: "Unix time at which the connector's last successful poll run finished; 0 before the first.",
	}))
	errs = append(errs, err)
	m.duration, err = Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tributary_poll_duration_seconds", ConstLabels: labels,
		Help:    "Time a poll run took, from its start to its last record handed over, by outcome (success, error).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"outcome"}))
	errs = append(errs, err)
	// Both outcomes exist from the start, so that a rate over them does
	// not miss the first error.
	m.duration.WithLabelValues(OutcomeSuccess)
	m.duration.WithLabelValues(OutcomeError)
	return m, errors.Join(errs...)
}

// Register adds c to reg and returns it, or returns the collector of the
// same identity already registered (a connector reopened, or opened again
// after its sidecar rebuilt it, in one process): a reopened connector
// keeps counting where it was. It returns c and an error when c clashes
// with a different collector of the same name; c then counts unexported.
// A nil reg registers nothing.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}
