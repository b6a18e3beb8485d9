// Package postgres registers the "postgres_cdc" source connector: the
// changes of PostgreSQL tables through logical replication with the
// built-in pgoutput plugin (no server extension), after a consistent,
// resumable snapshot of their rows. See README.md.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "postgres_cdc"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Streams inserts, updates, deletes and truncates of PostgreSQL tables through logical replication (pgoutput), after a consistent, resumable snapshot.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the postgres_cdc connector.
type Source struct {
	cfg        Config
	configured bool

	mu     sync.Mutex // guards the fields below against Status and Close
	pool   *pgxpool.Pool
	repl   *pgconn.PgConn
	recv   *receiver
	snap   *snapshotReader
	rel    *releaser
	outbox *outboxTracker
	lag    *cdc.Lag
	stopBG context.CancelFunc
	bgctx  context.Context
	bg     sync.WaitGroup
	// metas are the captured tables, by qualified name.
	metas   map[string]*tableMeta
	resnaps *resnapshots
	unmount func()
	closed  bool
	log     *slog.Logger
	state   string
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

// Configure decodes the configuration, with its declared defaults, and
// validates it. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	cfg, err := decodeConfig(c)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg, s.configured = cfg, true
	return nil
}

var errNotConfigured = errors.New("postgres_cdc source used before Configure")

// newTypes returns a type resolver that loads unknown types from the
// catalog through the pool.
func (s *Source) newTypes() *types {
	ts := newTypes()
	pool := s.pool
	ts.lookup = func(oid uint32) (byte, uint32, uint32, byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var typtype, delim string
		var base, elem uint32
		err := pool.QueryRow(ctx, `select t.typtype::text, t.typbasetype,
				case when t.typcategory = 'A' then t.typelem else 0 end, coalesce(e.typdelim::text, ',')
			from pg_type t left join pg_type e on e.oid = t.typelem where t.oid = $1`, oid).Scan(&typtype, &base, &elem, &delim)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, 0, 0, 0, nil
		}
		if err != nil {
			return 0, 0, 0, 0, err
		}
		return typtype[0], base, elem, delim[0], nil
	}
	return ts
}

// heartbeat measures the slot lag and, with the message action, writes a
// logical decoding message when the slot has been idle for an interval.
func (s *Source) heartbeat(ctx context.Context, pool *pgxpool.Pool, r *receiver, lag *cdc.Lag) {
	t := time.NewTicker(s.cfg.Heartbeat.Interval)
	defer t.Stop()
	measure := func() {
		qctx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat.Interval)
		defer cancel()
		var bytes int64
		err := pool.QueryRow(qctx, `select coalesce((pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, -1)
			from pg_replication_slots where slot_name = $1`, s.cfg.Slot).Scan(&bytes)
		if err == nil {
			lag.Set(bytes)
		}
		if s.cfg.Heartbeat.Action != HeartbeatMessage || bytes <= 0 {
			return
		}
		if time.Since(time.Unix(0, r.lastData.Load())) < s.cfg.Heartbeat.Interval {
			return
		}
		if _, err := pool.Exec(qctx, `select pg_logical_emit_message(false, $1, '')`, HeartbeatPrefix); err != nil && ctx.Err() == nil {
			s.log.Warn("heartbeat message failed", "err", err)
		}
	}
	measure()
	for {
		select {
		case <-t.C:
			measure()
		case <-ctx.Done():
			return
		}
	}
}

// Read returns the next changes: snapshot rows first, then the stream.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	sr, r := s.snap, s.recv
	s.mu.Unlock()
	if r == nil {
		return nil, core.Fatal(errors.New("postgres_cdc source read before Open"))
	}
	if sr != nil {
		chs, err := sr.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		var last []byte
		if len(chs) > 0 {
			last = chs[len(chs)-1].Position.Data
		}
		s.rel.snapshotRead(last, sr.done())
		if sr.done() {
			s.mu.Lock()
			if s.snap == sr {
				s.snap, s.state = nil, "streaming"
			}
			s.mu.Unlock()
			sr.close(ctx)
			s.log.Info("snapshot done")
		}
		if len(chs) > 0 {
			return chs, nil
		}
	}
	select {
	case b, ok := <-r.out:
		if !ok {
			<-r.done
			if r.err != nil {
				return nil, r.err
			}
			return nil, fmt.Errorf("replication stream of slot %q ended", s.cfg.Slot)
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Ack lets the slot confirm everything up to pos once the transactions
// before it are wholly acknowledged; see README.md. It does not block: the
// confirmed position is sent with the next status update.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	s.mu.Lock()
	rel, ob := s.rel, s.outbox
	s.mu.Unlock()
	if rel == nil {
		return errors.New("postgres_cdc source acknowledged before Open")
	}
	p, err := cdc.DecodePosition(pos)
	if err != nil {
		return err
	}
	if p.IsSnapshot() {
		rel.ackSnapshot(pos.Data)
		return nil
	}
	c, err := pglogrepl.ParseLSN(p.Commit)
	if err != nil {
		return fmt.Errorf("acknowledge %s: %w", pos, err)
	}
	rel.ackStream(ord{c, p.Index})
	if ob != nil {
		ob.ack(ord{c, p.Index})
	}
	return nil
}

// Close stops the stream, reports the confirmed position a last time and
// closes the connections, waiting (a few seconds at most) until the server
// has let go of the slot, so that an Open right after finds it free. It is
// bounded by ctx and safe to call twice.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	r, repl, pool, sr, stop, lag := s.recv, s.repl, s.pool, s.snap, s.stopBG, s.lag
	s.recv, s.repl, s.pool, s.snap, s.stopBG, s.lag = nil, nil, nil, nil, nil, nil
	unmount := s.unmount
	s.unmount, s.state = nil, "closed"
	s.mu.Unlock()
	if unmount != nil {
		unmount()
	}
	if r != nil {
		r.halt()
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	if stop != nil {
		stop()
	}
	s.bg.Wait()
	if sr != nil {
		sr.close(ctx)
	}
	if repl != nil {
		pid := repl.PID()
		_ = repl.Close(ctx)
		if r != nil {
			<-r.done
		}
		if pool != nil {
			awaitSlotRelease(ctx, pool, s.cfg.Slot, pid)
		}
	}
	if pool != nil {
		pool.Close()
	}
	if lag != nil {
		lag.Close()
	}
	return nil
}

// slotReleaseWait bounds how long Close waits for the server to let go of
// the slot: past it, the next Open reports the slot in use and the runtime
// retries.
const slotReleaseWait = 5 * time.Second

// awaitSlotRelease waits until the walsender of the closed replication
// connection (its backend pid) no longer holds the slot. The server ends it
// a moment after the connection closes; until then the slot counts as in
// use, and an Open would take it for another consumer's.
func awaitSlotRelease(ctx context.Context, pool *pgxpool.Pool, slot string, pid uint32) {
	ctx, cancel := context.WithTimeout(ctx, slotReleaseWait)
	defer cancel()
	for {
		var holder int64
		err := pool.QueryRow(ctx, `select coalesce(max(active_pid), 0) from pg_replication_slots where slot_name = $1`, slot).Scan(&holder)
		if err != nil || holder != int64(pid) {
			return
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// Status reports the phase, the slot and its lag in bytes.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := map[string]any{"slot": s.cfg.Slot, "publication": s.cfg.Publication, "phase": s.state}
	if s.lag != nil {
		st["slot_lag_bytes"] = s.lag.Bytes()
	}
	if s.rel != nil {
		st["confirmed_lsn"] = s.rel.flush().String()
	}
	if s.resnaps != nil {
		if rs := s.resnaps.status(); rs != nil {
			st["on_demand_snapshot"] = rs
		}
	}
	return st
}

// Health returns nil while the replication stream is running.
func (s *Source) Health(ctx context.Context) error {
	s.mu.Lock()
	r := s.recv
	s.mu.Unlock()
	if r == nil {
		return errors.New("postgres_cdc source is not open")
	}
	select {
	case <-r.done:
		return fmt.Errorf("replication stream of slot %q stopped: %v", s.cfg.Slot, r.err)
	default:
		return nil
	}
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
