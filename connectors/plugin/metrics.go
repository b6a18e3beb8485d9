package plugin

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// metrics are one plugin connector's series, labelled with its name.
type metrics struct {
	reg      prometheus.Registerer
	name     string
	restarts prometheus.Counter
}

// started counts a start of the plugin's process: every one after the
// first of this Source is a restart (after a crash, a hang, an error or a
// connector restart). The series are registered at the first start and
// kept across reopens. Callers hold s.mu.
func (s *Source) started(env core.Env, log *slog.Logger) {
	if m := s.met; m == nil || m.reg != env.Metrics || m.name != env.Name {
		restarts := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tributary_plugin_restarts_total", ConstLabels: prometheus.Labels{"connector": env.Name},
			Help: "Starts of the plugin's process after its first: restarts after a crash, a hang, an error or a connector restart.",
		})
		restarts, err := core.RegisterMetric(env.Metrics, restarts)
		if err != nil {
			log.Warn("plugin metrics are not exported", "err", err)
		}
		s.met = &metrics{reg: env.Metrics, name: env.Name, restarts: restarts}
	}
	if s.starts > 1 {
		s.met.restarts.Inc()
	}
}
