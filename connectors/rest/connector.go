// Package rest registers the "rest_poll" source connector: an HTTP API
// polled on a schedule, asking for the records changed since a watermark
// (cursor mode) or reading the whole collection and diffing it (snapshot
// mode), through every common pagination and authentication scheme. See
// README.md.
package rest

import (
	"context"
	"errors"

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
		Fields:  Fields(),
		New:     func() core.Source { return New() },
	}
}

// Source is the rest_poll connector.
type Source struct {
	cfg   Config
	fetch *fetcher
	inner *poll.Source
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

var errNotConfigured = errors.New("rest_poll source used before Configure")

// Configure decodes and validates the configuration and compiles the
// request templates. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg = cfg
	tmpl, err := compileTemplates(&s.cfg)
	if err != nil {
		return err
	}
	s.fetch = &fetcher{cfg: &s.cfg, tmpl: tmpl, client: newClient(&s.cfg)}
	pc := poll.Config{Fetcher: s.fetch, Source: core.SourceInfo{System: "rest", Endpoint: redactURL(cfg.URL)}}
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
	s.inner = inner
	return nil
}

// Open starts polling from `from`.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.inner == nil {
		return core.Fatal(errNotConfigured)
	}
	return s.inner.Open(ctx, env, from)
}

// Read returns the next page of record changes.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	if s.inner == nil {
		return nil, core.Fatal(errNotConfigured)
	}
	return s.inner.Read(ctx)
}

// Ack advances the local state up to pos.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Ack(ctx, pos)
}

// Close stops polling and drops idle connections. It is safe to call twice
// and before Open.
func (s *Source) Close(ctx context.Context) error {
	if s.inner == nil {
		return nil
	}
	err := s.inner.Close(ctx)
	s.fetch.client.close()
	return err
}

// Status reports the schedule, watermark and pending changes.
func (s *Source) Status() map[string]any {
	if s.inner == nil {
		return map[string]any{"configured": false}
	}
	st := s.inner.Status()
	st["endpoint"] = redactURL(s.cfg.URL)
	return st
}

// Health returns nil while the source is open.
func (s *Source) Health(ctx context.Context) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Health(ctx)
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
