package kafka

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// producerMetrics are the producer's series under /metrics, labelled with
// the stream's name. A nil *producerMetrics counts nothing.
type producerMetrics struct {
	batches  prometheus.Counter
	records  prometheus.Histogram
	latency  prometheus.Histogram
	retries  prometheus.Counter
	requests prometheus.Gauge
	throttle prometheus.Counter
}

// newProducerMetrics registers the producer's series on reg (nil: none are
// exported, but they still count), reusing those an earlier Open
// registered.
func newProducerMetrics(reg prometheus.Registerer, stream string) (*producerMetrics, error) {
	labels := prometheus.Labels{"stream": stream}
	m := &producerMetrics{}
	var errs [6]error
	m.batches, errs[0] = core.RegisterMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_kafka_producer_batches_total", ConstLabels: labels,
		Help: "Record batches the Kafka producer sent, retries included.",
	}))
	m.records, errs[1] = core.RegisterMetric(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tributary_kafka_producer_batch_records", ConstLabels: labels,
		Help:    "Records per record batch sent.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	}))
	m.latency, errs[2] = core.RegisterMetric(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tributary_kafka_producer_request_seconds", ConstLabels: labels,
		Help:    "Time from sending a produce request to its answer (acks from all in-sync replicas).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}))
	m.retries, errs[3] = core.RegisterMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_kafka_producer_retries_total", ConstLabels: labels,
		Help: "Record batches sent again after a retriable error or a lost answer.",
	}))
	m.requests, errs[4] = core.RegisterMetric(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tributary_kafka_producer_inflight_requests", ConstLabels: labels,
		Help: "Produce requests sent and not yet answered, over all brokers.",
	}))
	m.throttle, errs[5] = core.RegisterMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_kafka_producer_throttle_seconds_total", ConstLabels: labels,
		Help: "Time the brokers asked the producer to wait (quota throttling); the producer sends nothing to a broker while it lasts.",
	}))
	return m, errors.Join(errs[:]...)
}

func (m *producerMetrics) batch(records int) {
	if m != nil {
		m.batches.Inc()
		m.records.Observe(float64(records))
	}
}

func (m *producerMetrics) answered(latency, throttle time.Duration) {
	if m != nil {
		m.latency.Observe(latency.Seconds())
		if throttle > 0 {
			m.throttle.Add(throttle.Seconds())
		}
	}
}

func (m *producerMetrics) retry() {
	if m != nil {
		m.retries.Inc()
	}
}

func (m *producerMetrics) inflight(delta int) {
	if m != nil {
		m.requests.Add(float64(delta))
	}
}
