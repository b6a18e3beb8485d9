// Package files registers the "files_poll" source connector: a directory
// polled for CSV, JSON Lines and fixed-width files, each record a change,
// each file read once (by checksum) and moved, deleted or marked only after
// its events are on the stream. See README.md.
package files

import (
	"context"
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
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the files_poll connector. Its Open, Read, Ack, Close, Status
// and Health are those of the embedded poll.Connector; Ack finishes
// (moves, deletes or marks) every file whose records are all acknowledged.
type Source struct {
	poll.Connector
	cfg   Config
	fetch *fetcher
	now   func() time.Time
}

// New returns an unconfigured source.
func New() *Source { return &Source{Connector: poll.Connector{Type: Type}, now: time.Now} }

// Configure decodes and validates the configuration. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
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
	s.SetSource(inner, poll.ConnectorHooks{Open: s.open, Close: s.release, Status: s.status})
	return nil
}

// open opens the processed-file list, before the schedule starts.
func (s *Source) open(ctx context.Context, env core.Env) error {
	return s.fetch.open(ctx, env.StateDir)
}

// release closes the processed-file list, if open.
func (s *Source) release() error {
	if err := s.fetch.close(); err != nil {
		return fmt.Errorf("close processed-file list: %w", err)
	}
	return nil
}

// status adds the directory, the files in flight and the count of records
// that did not parse to the status.
func (s *Source) status(st map[string]any) {
	st["dir"] = s.cfg.Dir
	s.fetch.mu.Lock()
	st["files_in_flight"] = len(s.fetch.inflight)
	s.fetch.mu.Unlock()
	st["parse_errors"] = s.fetch.parseErrors.Load()
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
