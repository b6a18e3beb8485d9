// Package rest registers the "rest_poll" source connector: an HTTP API
// polled on a schedule, asking for the records changed since a watermark
// (cursor mode) or reading the whole collection and diffing it (snapshot
// mode), through every common pagination and authentication scheme. See
// README.md.
package rest

import (
	"context"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "rest_poll"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Polls an HTTP API (JSON or XML) by a watermark or a snapshot diff, with pagination, authentication, retries and a rate limit.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the rest_poll connector. Its Open, Read, Ack, Close, Status
// and Health are those of the embedded poll.Connector.
type Source struct {
	poll.Connector
	cfg   Config
	fetch *fetcher
}

// New returns an unconfigured source.
func New() *Source { return &Source{Connector: poll.Connector{Type: Type}} }

// Configure decodes and validates the configuration and compiles the
// request templates. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg = cfg
	tmpl, err := compileTemplates(&s.cfg)
	if err != nil {
		return err
	}
	s.fetch = &fetcher{cfg: &s.cfg, tmpl: tmpl, client: newClient(&s.cfg)}
	pc := poll.Config{Fetcher: s.fetch, Source: core.SourceInfo{System: "rest", Endpoint: endpoint(cfg.URL)}}
	cfg.ScheduleConfig.Apply(&pc)
	if cfg.Mode == ModeCursor {
		pc.Mode, pc.Cursor = poll.ModeCursor, poll.CursorKind(cfg.Cursor.Type)
		pc.LookBack, pc.LookBackCount, _ = cfg.lookBack()
	} else {
		pc.Mode = poll.ModeSnapshot
	}
	inner, err := poll.NewSource(pc)
	if err != nil {
		return err
	}
	s.SetSource(inner, poll.ConnectorHooks{Open: s.acquire, Close: s.release, Status: s.status})
	return nil
}

// acquire registers the HTTP series, or keeps those of an earlier Open.
func (s *Source) acquire(_ context.Context, env core.Env) error {
	c := s.fetch.client
	if m := c.metrics.Load(); m != nil && m.reg == env.Metrics && m.name == env.Name {
		return nil
	}
	m, err := newHTTPMetrics(env.Metrics, env.Name)
	if err != nil && env.Logger != nil {
		env.Logger.Warn("HTTP metrics are not exported", "err", err)
	}
	c.metrics.Store(m)
	return nil
}

// release drops idle connections.
func (s *Source) release() error {
	s.fetch.client.close()
	return nil
}

// status adds the endpoint, credentials redacted, to the status.
func (s *Source) status(st map[string]any) {
	st["endpoint"] = endpoint(s.cfg.URL)
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
