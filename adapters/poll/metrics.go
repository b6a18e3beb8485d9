package poll

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
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
	m.last, err = core.RegisterMetric(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tributary_poll_last_success_timestamp_seconds", ConstLabels: labels,
		Help: "Unix time at which the connector's last successful poll run finished; 0 before the first.",
	}))
	errs = append(errs, err)
	m.duration, err = core.RegisterMetric(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
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
