package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// The reasons a delivery is rejected, as the rejected counter labels them.
const (
	ReasonMethod          = "method"           // 405: a method the connector does not accept
	ReasonTooLarge        = "too_large"        // 413: the body exceeds max_body_bytes
	ReasonUnsupportedType = "unsupported_type" // 415: a content type the connector does not accept
	ReasonBadBody         = "bad_body"         // 400: the body does not parse
	ReasonSignature       = "signature"        // 401: verification failed
	ReasonBackpressure    = "backpressure"     // 503: the inbox holds max_pending deliveries
	ReasonUnavailable     = "unavailable"      // 503: the inbox cannot store (closing, disk error)
	ReasonAckTimeout      = "ack_timeout"      // 503: not on the stream within the ack timeout (ack mode stream; dropped unless already read)
)

var reasons = []string{ReasonMethod, ReasonTooLarge, ReasonUnsupportedType, ReasonBadBody, ReasonSignature, ReasonBackpressure, ReasonUnavailable, ReasonAckTimeout}

// metrics are one connector's webhook collectors.
type metrics struct {
	reg        prometheus.Registerer
	accepted   prometheus.Counter
	rejected   map[string]prometheus.Counter
	duplicates prometheus.Counter
	handshakes prometheus.Counter
	latency    prometheus.Histogram
	pending    prometheus.GaugeFunc
	owned      []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, connector string, pending func() float64) *metrics {
	labels := prometheus.Labels{"connector": connector}
	m := &metrics{reg: reg, rejected: map[string]prometheus.Counter{}}
	accepted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_webhook_deliveries_accepted_total", ConstLabels: labels,
		Help: "Webhook deliveries stored in the inbox and answered with a 2xx.",
	})
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tributary_webhook_deliveries_rejected_total", ConstLabels: labels,
		Help: "Webhook deliveries refused, by reason; none of them is emitted.",
	}, []string{"reason"})
	duplicates := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_webhook_deliveries_duplicate_total", ConstLabels: labels,
		Help: "Webhook deliveries whose delivery id was seen within the dedup window; answered 200 and not emitted.",
	})
	handshakes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_webhook_handshakes_total", ConstLabels: labels,
		Help: "Handshake requests answered (challenges echoed); never emitted.",
	})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tributary_webhook_handler_seconds", ConstLabels: labels,
		Help:    "Time from a request's arrival to its answer, inbox commit included.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})
	m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tributary_webhook_inbox_pending", ConstLabels: labels,
		Help: "Deliveries in the inbox that the stream has not acknowledged yet.",
	}, pending)
	m.accepted, _ = core.RegisterMetric(reg, accepted)
	rv, _ := core.RegisterMetric(reg, rejected)
	for _, r := range reasons {
		m.rejected[r] = rv.WithLabelValues(r)
	}
	m.duplicates, _ = core.RegisterMetric(reg, duplicates)
	m.handshakes, _ = core.RegisterMetric(reg, handshakes)
	m.latency, _ = core.RegisterMetric(reg, latency)
	// The gauge function reads this run's inbox: it replaces the one an
	// earlier run left, and goes with this run.
	if reg != nil && core.ReplaceMetric(reg, m.pending) == nil {
		m.owned = append(m.owned, m.pending)
	}
	return m
}

// close unregisters the collectors that read a closed run's state. Counters
// stay registered, so that they keep counting across reopens.
func (m *metrics) close() {
	if m.reg == nil {
		return
	}
	for _, c := range m.owned {
		m.reg.Unregister(c)
	}
}
