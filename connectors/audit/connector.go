// Package audit registers the "audit" sink: the log that consumes every
// event of the stream into an append-only table, in SQLite in the sink's
// state directory or in PostgreSQL, once per event id, and answers
// searches of it (`tributary events search`, Search) and records the
// replays operators run. See README.md.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tributary/tributary/core"
)

// Type is the sink type ID.
const Type = "audit"

func init() {
	core.RegisterSink(Spec())
}

// Spec returns the sink's registration, for registries built by tests.
func Spec() core.SinkSpec {
	return core.SinkSpec{
		Type:    Type,
		Summary: "Logs every event once, by id, in an append-only table in SQLite (the state directory) or PostgreSQL, kept for a retention period, for `tributary events search` and replays.",
		Config:  Config{},
		New:     func() core.Sink { return New() },
	}
}

// Sink is the audit sink. Write logs a call's deliveries in one
// transaction; a background goroutine, started by Open and stopped by
// Close, deletes the events older than the retention.
type Sink struct {
	cfg     Config
	now     func() time.Time
	runSize int // ids a run of a SQLite log takes; 0 for defaultRunSize

	mu     sync.Mutex
	db     *DB
	stop   context.CancelFunc
	pruned chan struct{} // closed when the pruning goroutine ends
}

// New returns an unconfigured sink.
func New() *Sink { return &Sink{now: time.Now} }

// Configure decodes and validates the configuration. It does no I/O.
func (s *Sink) Configure(c core.Config) error {
	cfg, err := ParseConfig(c)
	if err != nil {
		return err
	}
	s.cfg = cfg
	return nil
}

// Open opens the log, creating its file, tables and indexes when missing,
// and starts pruning it when a retention is set. Rejected credentials and
// a missing permission are fatal.
func (s *Sink) Open(ctx context.Context, env core.Env) error {
	if s.DB() != nil {
		// Open after Open: start afresh, as after Close.
		if err := s.Close(ctx); err != nil {
			return err
		}
	}
	if s.cfg.Driver == DriverSQLite && !filepath.IsAbs(s.cfg.Path) && env.StateDir == "" {
		return core.Fatal(fmt.Errorf("audit sink %q: no state directory for the relative path %q: set the sidecar's state_dir or an absolute path", env.Name, s.cfg.Path))
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := create(ctx, s.cfg, env.StateDir, log, s.runSize)
	if err != nil {
		return classify(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db = db
	s.stop, s.pruned = nil, nil
	if s.cfg.Retention > 0 {
		pctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		s.stop, s.pruned = stop, done
		go func() {
			defer close(done)
			s.pruneEvery(pctx, db, log)
		}()
	}
	return nil
}

// classify marks the errors retrying cannot fix as fatal.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "42501" || pe.Code == "3D000") {
		return core.Fatal(err)
	}
	if errors.Is(err, fs.ErrPermission) {
		return core.Fatal(err)
	}
	return err
}

// pruneEvery deletes the events older than the retention at once and then
// every prune_every, until ctx is done.
func (s *Sink) pruneEvery(ctx context.Context, db *DB, log *slog.Logger) {
	t := time.NewTicker(s.cfg.PruneEvery)
	defer t.Stop()
	for {
		n, err := db.prune(ctx, s.now().Add(-s.cfg.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pruning the audit log failed; trying again later", "error", err, "deleted", n)
		case n > 0:
			log.Debug("pruned the audit log", "deleted", n, "retention", s.cfg.Retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StreamWindow asks the runtime to hold up to 2048 events of a topic or
// partition unacknowledged (core.WindowedSink): the committer then groups
// more Writes into one commit (from the embedded stream, 31k-32k events/s
// with the default 512, 40k-41k with 2048, in runs back to back).
func (s *Sink) StreamWindow() int { return 2048 }

// Write logs the events of ds in one transaction: every result is
// StatusDelivered once it commits, StatusRetry when it does not (with the
// error on the first delivery of each partition key). An event the log
// already holds (by id) is left as it is, so a delivery made again is
// harmless. Calls may run concurrently.
func (s *Sink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	out := make([]core.Result, len(ds))
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	var err error
	if db == nil {
		err = errors.New("audit sink is not open")
	} else {
		err = db.write(ctx, ds, s.now())
	}
	if err != nil {
		// The first delivery of each key failed with err; the later ones
		// of its key were not attempted on their own, and say so with
		// no error, as core.Sink asks.
		first := make(map[string]bool, len(ds))
		for i, d := range ds {
			out[i] = core.Result{Status: core.StatusRetry}
			if !first[d.Event.PartitionKey] {
				first[d.Event.PartitionKey] = true
				out[i].Err = err
			}
		}
	}
	return out
}

// DB returns the open log, for the runtime's replays to record themselves
// in; nil when the sink is not open.
func (s *Sink) DB() *DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db
}

// Close stops pruning, waiting for it within ctx's deadline, and closes
// the log. It is safe to call twice and after a failed Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	db, stop, pruned := s.db, s.stop, s.pruned
	s.db, s.stop, s.pruned = nil, nil, nil
	s.mu.Unlock()
	if stop != nil {
		stop()
		select {
		case <-pruned:
		case <-ctx.Done():
			// The goroutine ends with its statement, which closing the
			// database below interrupts.
		}
	}
	if db == nil {
		return nil
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("close audit log %s: %w", db.where, err)
	}
	return nil
}

var _ core.WindowedSink = (*Sink)(nil)
