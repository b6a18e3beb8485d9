package runtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the runtime's Prometheus collectors. Every series carries a
// "connector" label.
type Metrics struct {
	ChangesRead    *prometheus.CounterVec
	EventsEmitted  *prometheus.CounterVec
	DeadLettered   *prometheus.CounterVec
	Errors         *prometheus.CounterVec
	InFlight       *prometheus.GaugeVec
	Up             *prometheus.GaugeVec
	CheckpointAge  *prometheus.GaugeVec
	PublishLatency *prometheus.HistogramVec
	// CommitLatency is the end-to-end delay from the source system's commit
	// of a change (Change.Source.CommitTime, where the source knows it) to
	// its events being durable on the stream.
	CommitLatency *prometheus.HistogramVec
}

// NewMetrics creates the collectors and registers them on reg (which may be
// nil, for tests that do not look).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ChangesRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_changes_read_total", Help: "Changes read from the connector's source.",
		}, []string{"connector"}),
		EventsEmitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_events_emitted_total", Help: "Events durably published to the stream.",
		}, []string{"connector", "type"}),
		DeadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_dead_lettered_total", Help: "Outputs sent to the dead-letter topic, by reason.",
		}, []string{"connector", "reason"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tributary_errors_total", Help: "Errors, by where they happened (open, read, publish, checkpoint, ack).",
		}, []string{"connector", "stage"}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_in_flight_changes", Help: "Changes read but not yet committed.",
		}, []string{"connector"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_connector_up", Help: "1 while the connector is running, 0 otherwise.",
		}, []string{"connector"}),
		CheckpointAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tributary_checkpoint_age_seconds", Help: "Seconds since the connector last committed a checkpoint.",
		}, []string{"connector"}),
		PublishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tributary_publish_latency_seconds",
			Help:    "Time from handing events to the stream to their durable acknowledgement.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"connector"}),
		CommitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tributary_commit_to_durable_seconds",
			Help:    "Time from the source system's commit of a change to its events being durable on the stream.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"connector"}),
	}
	if reg != nil {
		reg.MustRegister(m.ChangesRead, m.EventsEmitted, m.DeadLettered, m.Errors, m.InFlight, m.Up, m.CheckpointAge, m.PublishLatency, m.CommitLatency)
	}
	return m
}
