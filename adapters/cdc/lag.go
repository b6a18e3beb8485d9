package cdc

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// Lag is how far, in bytes of log, a connector's confirmed position trails
// the database's current one: the log the database keeps for it. It is
// exported as the gauge tributary_cdc_slot_lag_bytes{connector}. A Lag is
// safe for concurrent use.
type Lag struct {
	bytes atomic.Int64
	reg   prometheus.Registerer
	gauge prometheus.Collector
}

// NewLag returns a lag registered with reg (which may be nil) for
// connector. A gauge left registered by an earlier run of the same
// connector in this process is replaced.
func NewLag(reg prometheus.Registerer, connector string) *Lag {
	l := &Lag{reg: reg}
	l.bytes.Store(-1)
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "tributary_cdc_slot_lag_bytes",
		Help:        "Bytes of change log between the database's current position and the connector's confirmed one; -1 until measured.",
		ConstLabels: prometheus.Labels{"connector": connector},
	}, func() float64 { return float64(l.bytes.Load()) })
	if reg != nil {
		_ = core.ReplaceMetric(reg, g)
		l.gauge = g
	}
	return l
}

// Set records a new measurement.
func (l *Lag) Set(bytes int64) { l.bytes.Store(bytes) }

// Bytes returns the last measurement, or -1 before the first.
func (l *Lag) Bytes() int64 { return l.bytes.Load() }

// Close unregisters the gauge. It is safe to call twice.
func (l *Lag) Close() {
	if l.reg != nil && l.gauge != nil {
		l.reg.Unregister(l.gauge)
		l.gauge = nil
	}
}
