// Package files registers the "files_poll" source connector: a directory
// polled for CSV, JSON Lines and fixed-width files, each record a change,
// each file read once (by checksum) and moved, deleted or marked only after
// its events are on the stream. See README.md.
package files

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "files_poll"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Polls a directory for CSV, JSON Lines and fixed-width files and emits each record as a change; a file is moved only once its events are on the stream.",
		Fields:  Fields(),
		New:     func() core.Source { return New() },
	}
}

// Source is the files_poll connector.
type Source struct {
	cfg   Config
	fetch *fetcher
	inner *poll.Source
	now   func() time.Time
}

// New returns an unconfigured source.
func New() *Source { return &Source{now: time.Now} }

var errNotConfigured = errors.New("files_poll source used before Configure")

// Configure decodes and validates the configuration. It does no I/O.
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
	s.fetch = &fetcher{cfg: &s.cfg, now: s.now}
	pc := poll.Config{Mode: poll.ModeEach, Fetcher: s.fetch, Source: core.SourceInfo{System: "files", Endpoint: cfg.Dir}}
	cfg.ScheduleConfig.Apply(&pc)
	inner, err := poll.NewSource(pc)
	if err != nil {
		return err
	}
	s.inner = inner
	return nil
}

// Open opens the processed-file list and starts polling.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.inner == nil {
		return core.Fatal(errNotConfigured)
	}
	if err := s.fetch.open(ctx, env.StateDir); err != nil {
		return err
	}
	if err := s.inner.Open(ctx, env, from); err != nil {
		s.fetch.close()
		return err
	}
	return nil
}

// Read returns the next page of records.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	if s.inner == nil {
		return nil, core.Fatal(errNotConfigured)
	}
	return s.inner.Read(ctx)
}

// Ack finishes (moves, deletes or marks) every file whose records are all
// acknowledged up to pos.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Ack(ctx, pos)
}

// Close stops polling. It is safe to call twice and before Open.
func (s *Source) Close(ctx context.Context) error {
	if s.inner == nil {
		return nil
	}
	err := s.inner.Close(ctx)
	if cerr := s.fetch.close(); cerr != nil && err == nil {
		err = fmt.Errorf("close processed-file list: %w", cerr)
	}
	return err
}

// Status reports the schedule and pending records.
func (s *Source) Status() map[string]any {
	if s.inner == nil {
		return map[string]any{"configured": false}
	}
	st := s.inner.Status()
	st["dir"] = s.cfg.Dir
	s.fetch.mu.Lock()
	st["files_in_flight"] = len(s.fetch.inflight)
	s.fetch.mu.Unlock()
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
