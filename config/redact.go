package config

import (
	"time"

	"github.com/tributary/tributary/core"
)

// Redaction replaces secret values in Redacted's copy.
const Redaction = "[redacted]"

// Redacted returns a copy of c that is safe to print or log: the values of
// fields declared Secret, and every value read through ${file:...}, are
// replaced by Redaction. c itself is unchanged.
func (c *Config) Redacted() *Config {
	out := *c
	out.Stream.Config = redact(c.Stream.Config, c.Stream.secrets)
	out.Connectors = make([]ConnectorConfig, len(c.Connectors))
	for i, cc := range c.Connectors {
		cc.Config = redact(cc.Config, cc.secrets)
		cc.Emit = append([]core.Rule(nil), cc.Emit...)
		out.Connectors[i] = cc
	}
	out.Sinks = make([]SinkConfig, len(c.Sinks))
	for i, sc := range c.Sinks {
		sc.Config = redact(sc.Config, sc.secrets)
		sc.Events = append([]string(nil), sc.Events...)
		sc.Retry = append([]time.Duration(nil), sc.Retry...)
		out.Sinks[i] = sc
	}
	out.Catalog = append([]core.EventType(nil), c.Catalog...)
	out.Warnings = append([]Problem(nil), c.Warnings...)
	return &out
}

// redact returns a deep copy of cfg with the values at the given paths
// replaced.
func redact(cfg core.Config, paths []string) core.Config {
	values := copyMap(cfg.Values)
	for _, p := range paths {
		var cur any = values
		segs := parsePath(p)
		for i, s := range segs {
			last := i == len(segs)-1
			switch t := cur.(type) {
			case map[string]any:
				if s.isIdx {
					cur = nil
				} else if _, ok := t[s.key]; ok && last {
					t[s.key] = Redaction
				} else {
					cur = t[s.key]
				}
			case []any:
				if !s.isIdx || s.index < 0 || s.index >= len(t) {
					cur = nil
				} else if last {
					t[s.index] = Redaction
				} else {
					cur = t[s.index]
				}
			default:
				cur = nil
			}
		}
	}
	return core.Config{Name: cfg.Name, Values: values}
}
