// Package erp is a custom connector for the Acme ERP, a legacy system that
// exports its records as XML over HTTP and numbers every change with a
// sequence. No shipped connector speaks this dialect, so it is written in
// Go against Tributary's public contracts (core.Source, a tagged Config,
// core.RegisterSource) and compiled into a custom sidecar; see
// ../cmd/acme-tributary and ../README.md.
//
// The connector polls GET {url}/{entity}?after={seq}&limit={batch_size} and
// turns each <record> into a change whose position is the record's
// sequence, so a restart resumes after the last committed record.
package erp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// Type is the connector type ID used in YAML.
const Type = "acme_erp_poll"

// PositionVersion is the version of the position format: the record
// sequence as a decimal string.
const PositionVersion = 1

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Polls the Acme ERP XML export and emits each changed record, resuming after the last committed sequence.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source reads the Acme ERP export. Create it with New.
type Source struct {
	cfg    Config
	client *http.Client

	// mu guards the session state below, which Close resets.
	mu     sync.Mutex
	open   bool
	after  uint64 // sequence of the last record read
	closed chan struct{}

	acked atomic.Uint64
	polls atomic.Uint64
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

// Configure decodes the configuration, filling the keys it leaves out with
// their declared defaults, and validates it. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg = cfg
	return nil
}

// Open checks that the export answers and prepares to read the records after
// from. A zero from starts at the beginning of the export.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.cfg.URL == "" {
		return core.Fatal(errors.New("acme erp source opened before Configure"))
	}
	after, err := parsePosition(from)
	if err != nil {
		return core.Fatal(err)
	}
	s.client = &http.Client{Timeout: s.cfg.Timeout}
	// One probe so that a wrong URL fails Open, where the runtime retries
	// with backoff, rather than every Read.
	if _, err := s.fetch(ctx, after, 1); err != nil {
		s.client.CloseIdleConnections()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.after, s.open, s.closed = after, true, make(chan struct{})
	return nil
}

// Read polls until at least one record is newer than the last one read.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	if !s.open {
		s.mu.Unlock()
		return nil, core.Fatal(errors.New("acme erp source read before Open"))
	}
	after, closed := s.after, s.closed
	s.mu.Unlock()
	for {
		recs, err := s.fetch(ctx, after, s.cfg.BatchSize)
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			out := make([]core.Change, 0, len(recs))
			for _, r := range recs {
				out = append(out, r.change(s.cfg.Entity))
			}
			s.mu.Lock()
			s.after = recs[len(recs)-1].Seq
			s.mu.Unlock()
			return out, nil
		}
		select {
		case <-time.After(s.cfg.PollInterval):
		case <-closed:
			return nil, errors.New("acme erp source closed")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack records the committed sequence. The ERP keeps its export whatever is
// read, so there is nothing to release.
func (s *Source) Ack(_ context.Context, pos core.Position) error {
	seq, err := parsePosition(pos)
	if err != nil {
		return err
	}
	s.acked.Store(seq)
	return nil
}

// Close ends the session. It is safe to call twice and before Open.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return nil
	}
	s.open = false
	close(s.closed)
	s.client.CloseIdleConnections()
	return nil
}

// Status reports the last committed sequence and the number of polls.
func (s *Source) Status() map[string]any {
	return map[string]any{"acked_seq": s.acked.Load(), "polls": s.polls.Load(), "entity": s.cfg.Entity}
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
)

// fetch asks the export for at most limit records after seq.
func (s *Source) fetch(ctx context.Context, after uint64, limit int) ([]Record, error) {
	s.polls.Add(1)
	u := fmt.Sprintf("%s/%s?after=%d&limit=%d", s.cfg.URL, url.PathEscape(s.cfg.Entity), after, limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, core.Fatal(fmt.Errorf("build request %s: %w", u, err))
	}
	if s.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("poll acme erp %s: %w", s.cfg.Entity, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, core.Fatal(fmt.Errorf("poll acme erp %s: status %d: check the token", s.cfg.Entity, resp.StatusCode))
	case resp.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("poll acme erp %s: status %d: %s", s.cfg.Entity, resp.StatusCode, body)
	}
	var exp Export
	if err := xml.NewDecoder(resp.Body).Decode(&exp); err != nil {
		return nil, fmt.Errorf("decode acme erp %s export: %w", s.cfg.Entity, err)
	}
	for i, r := range exp.Records {
		if r.Seq <= after || (i > 0 && r.Seq <= exp.Records[i-1].Seq) {
			return nil, fmt.Errorf("acme erp %s export: record %q has sequence %d out of order after %d", s.cfg.Entity, r.Key, r.Seq, after)
		}
	}
	return exp.Records, nil
}

func parsePosition(p core.Position) (uint64, error) {
	if p.IsZero() {
		return 0, nil
	}
	if p.Version != PositionVersion {
		return 0, fmt.Errorf("acme erp position %s: unknown version %d (this build reads version %d)", p, p.Version, PositionVersion)
	}
	seq, err := strconv.ParseUint(string(p.Data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("acme erp position %s: not a sequence: %w", p, err)
	}
	return seq, nil
}
