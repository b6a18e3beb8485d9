package rest

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// httpMetrics are one rest_poll connector's HTTP series, labelled with its
// name.
type httpMetrics struct {
	reg       prometheus.Registerer
	name      string
	responses *prometheus.CounterVec
	throttled prometheus.Counter
}

// newHTTPMetrics registers the series of connector on reg (nil: none are
// exported), reusing those an earlier Open registered.
func newHTTPMetrics(reg prometheus.Registerer, connector string) (*httpMetrics, error) {
	labels := prometheus.Labels{"connector": connector}
	m := &httpMetrics{reg: reg, name: connector}
	var err1, err2 error
	m.responses, err1 = core.RegisterMetric(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tributary_http_responses_total", ConstLabels: labels,
		Help: "HTTP responses the connector received, by status code; retried requests count once per answer.",
	}, []string{"code"}))
	m.throttled, err2 = core.RegisterMetric(reg, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tributary_http_throttled_total", ConstLabels: labels,
		Help: "Responses asking the connector to slow down: 429 Too Many Requests, or 503 with Retry-After.",
	}))
	return m, errors.Join(err1, err2)
}

// count records one answer.
func (c *client) count(status int, h http.Header) {
	m := c.metrics.Load()
	if m == nil {
		return
	}
	m.responses.WithLabelValues(strconv.Itoa(status)).Inc()
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable && h.Get("Retry-After") != "" {
		m.throttled.Inc()
	}
}
