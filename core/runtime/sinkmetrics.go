package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// sinkMetrics holds the Prometheus collectors of sinks. Every series
// carries a "sink" label.
type sinkMetrics struct {
	delivered    *prometheus.CounterVec
	retries      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	lagEvents    *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	delivery     *prometheus.HistogramVec
	up           *prometheus.GaugeVec
}

// newSinkMetrics creates the collectors and registers them on reg (which
// may be nil).
func newSinkMetrics(reg prometheus.Registerer) *sinkMetrics {
	m := &sinkMetrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_sink_delivered_total", Help: "Events the sink's target took.",
		}, []string{"sink"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_sink_retries_total", Help: "Deliveries the target asked to retry, or that failed with an error retrying may fix.",
		}, []string{"sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_sink_dead_lettered_total", Help: "Events the sink sent to the dead-letter topic, by reason.",
		}, []string{"sink", "reason"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_sink_lag_events", Help: "Events the sink read from the stream and has not committed yet.",
		}, []string{"sink"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_sink_lag_seconds", Help: "Age of the oldest event the sink read and has not committed yet.",
		}, []string{"sink"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tributary_sink_delivery_seconds",
			Help:    "Time from an event's append to the stream (its time, where the stream does not say) to its delivery by the sink.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"sink"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_sink_up", Help: "1 while the sink is running (delivering, circuit closed, not paused), 0 otherwise.",
		}, []string{"sink"}),
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retries, m.deadLettered, m.lagEvents, m.lagSeconds, m.delivery, m.up)
	}
	return m
}

// sinkSeries are one sink's series.
type sinkSeries struct {
	delivered    prometheus.Counter
	retries      prometheus.Counter
	deadLettered *prometheus.CounterVec
	lagEvents    prometheus.Gauge
	lagSeconds   prometheus.Gauge
	delivery     prometheus.Observer
	up           prometheus.Gauge
	name         string
}

func (m *sinkMetrics) series(name string) sinkSeries {
	return sinkSeries{
		delivered:    m.delivered.WithLabelValues(name),
		retries:      m.retries.WithLabelValues(name),
		deadLettered: m.deadLettered,
		lagEvents:    m.lagEvents.WithLabelValues(name),
		lagSeconds:   m.lagSeconds.WithLabelValues(name),
		delivery:     m.delivery.WithLabelValues(name),
		up:           m.up.WithLabelValues(name),
		name:         name,
	}
}

func (s sinkSeries) deadLetter(reason string) {
	s.deadLettered.WithLabelValues(s.name, reason).Inc()
}
