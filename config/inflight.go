package config

import "go.yaml.in/yaml/v3"

// InFlightDefaulter is implemented by a source whose connector type needs
// a max_in_flight other than DefaultMaxInFlight when a connector entry
// sets none: a CDC source, whose every change in flight holds its decoded
// rows, declares a lower one so that a catch-up's memory stays bounded. A
// max_in_flight written in the entry always wins. It is called on a new,
// unconfigured value and does no I/O.
type InFlightDefaulter interface {
	// DefaultMaxInFlight returns the default, at least 1.
	DefaultMaxInFlight() int
}

// typeMaxInFlight gives c the max_in_flight its type declares when its
// entry (item) sets none.
func (l *loader) typeMaxInFlight(c *ConnectorConfig, item *yaml.Node, src any) {
	d, ok := src.(InFlightDefaulter)
	if !ok || d.DefaultMaxInFlight() < 1 {
		return
	}
	if p, set := l.lookup(item, "max_in_flight"); set && !isNull(p.value) {
		return
	}
	c.MaxInFlight = d.DefaultMaxInFlight()
}
