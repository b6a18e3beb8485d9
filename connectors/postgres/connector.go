// Package postgres registers the "postgres_cdc" source connector: the
// changes of PostgreSQL tables through logical replication with the
// built-in pgoutput plugin (no server extension), after a consistent,
// resumable snapshot of their rows. See README.md.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// Open checks the server (wal_level, REPLICATION), creates or verifies the
// publication and the slot, starts the snapshot when one is due, and starts
// streaming from the slot: from the position after from, or from where a
// new snapshot is consistent. See README.md for the decisions.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if !s.configured {
		return core.Fatal(errNotConfigured)
	}
	cfg := &s.cfg
	log := env.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var pos cdc.Position
	if !from.IsZero() {
		var err error
		if pos, err = cdc.DecodePosition(from); err != nil {
			return core.Fatal(fmt.Errorf("read checkpoint: %w: remove the checkpoint to start over", err))
		}
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return core.Fatal(fmt.Errorf("parse url: %s", redactParseError(err)))
	}
	// The heartbeat, TOAST lookups, the outbox and on-demand snapshots
	// share three connections; each snapshot worker holds one of its own.
	pcfg.MaxConns = int32(3 + cfg.Snapshot.Parallel)
	textForms(pcfg.ConnConfig.RuntimeParams, env.Name)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return connectError("connect to PostgreSQL", err)
	}
	s.mu.Lock()
	s.pool, s.log, s.closed = pool, log, false
	s.mu.Unlock()
	if err := pool.Ping(ctx); err != nil {
		return connectError("connect to PostgreSQL", err)
	}
	if err := checkServer(ctx, pool); err != nil {
		return err
	}
	tables, err := ensurePublication(ctx, pool, cfg)
	if err != nil {
		return err
	}
	metas := map[string]*tableMeta{}
	for _, t := range tables {
		m, err := loadTable(ctx, pool, t)
		if err != nil {
			return err
		}
		if err := m.checkIdentity(); err != nil && m.qualified() != qualified(cfg.Outbox.Table) {
			return err
		}
		metas[m.qualified()] = m
	}
	var outboxMeta *tableMeta
	if cfg.Outbox.Table != "" {
		if outboxMeta = metas[qualified(cfg.Outbox.Table)]; outboxMeta == nil {
			return core.Fatal(fmt.Errorf("outbox table %s is not in publication %q: add it (ALTER PUBLICATION %s ADD TABLE %s) or list it in tables", cfg.Outbox.Table, cfg.Publication, ident(cfg.Publication), cfg.Outbox.Table))
		}
	}
	var database string
	if err := pool.QueryRow(ctx, "select current_database()").Scan(&database); err != nil {
		return fmt.Errorf("read database name: %w", err)
	}
	slot, err := readSlot(ctx, pool, cfg.Slot)
	if err != nil {
		return err
	}
	if slot.exists {
		if err := checkSlot(slot, cfg.Slot, database); err != nil {
			return err
		}
	}

	rcfg, err := pgconn.ParseConfig(cfg.URL)
	if err != nil {
		return core.Fatal(fmt.Errorf("parse url: %s", redactParseError(err)))
	}
	rcfg.RuntimeParams["replication"] = "database"
	textForms(rcfg.RuntimeParams, env.Name)
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return connectError("open replication connection", err)
	}
	s.mu.Lock()
	s.repl = repl
	s.mu.Unlock()

	doSnap, err := cdc.Decide(cdc.SnapshotMode(cfg.Snapshot.Mode), !from.IsZero(), pos.IsSnapshot(), slot.exists)
	if err != nil {
		return core.Fatal(fmt.Errorf("slot %q: %w", cfg.Slot, err))
	}
	var start pglogrepl.LSN
	var exported, at string
	var after *cdc.SnapshotPosition
	resume := ordStreamStart
	if !slot.exists {
		if cfg.Setup == SetupVerify {
			return core.Fatal(fmt.Errorf("replication slot %q does not exist and setup is %q: create it (SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or set setup: %s", cfg.Slot, SetupVerify, cfg.Slot, SetupAuto))
		}
		action := "NOEXPORT_SNAPSHOT"
		if doSnap {
			action = "EXPORT_SNAPSHOT"
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42710" {
				return fmt.Errorf("create replication slot %q: it was created meanwhile by another consumer; retrying", cfg.Slot)
			}
			return fmt.Errorf("create replication slot %q: %w", cfg.Slot, err)
		}
		if start, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
			return fmt.Errorf("create replication slot %q: consistent point %q: %w", cfg.Slot, res.ConsistentPoint, err)
		}
		exported, at = res.SnapshotName, res.ConsistentPoint
		log.Info("replication slot created", "slot", cfg.Slot, "consistent_point", at)
	} else {
		switch {
		case pos.IsSnapshot():
			after, at = pos.Snapshot, pos.Snapshot.At
			if start, err = pglogrepl.ParseLSN(at); err != nil {
				return core.Fatal(fmt.Errorf("read checkpoint %s: %w", from, err))
			}
		case !from.IsZero():
			c, err := pglogrepl.ParseLSN(pos.Commit)
			if err != nil {
				return core.Fatal(fmt.Errorf("read checkpoint %s: %w", from, err))
			}
			start, resume = c, ord{c, pos.Index}
		default:
			start, at = slot.confirmed, slot.confirmed.String()
		}
	}

	s.rel = newReleaser(start, doSnap)
	if doSnap {
		outbox := ""
		if cfg.Outbox.Table != "" {
			outbox = qualified(cfg.Outbox.Table)
		}
		sr := newSnapshotReader(cdc.NewPlan(keysOf(metas)).Remaining(after), after, metas, at,
			cfg.Snapshot.ChunkSize, cfg.Snapshot.Parallel, outbox, s.newTypes)
		// Every worker imports the exported snapshot here, before
		// START_REPLICATION below: the replication connection's next
		// command ends the snapshot's life.
		if err := sr.begin(ctx, pool, exported); err != nil {
			return err
		}
		s.mu.Lock()
		s.snap = sr
		s.mu.Unlock()
		log.Info("snapshot started", "tables", len(sr.steps), "parallel", sr.parallel, "consistent_with", at, "exported", exported != "")
	}

	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", cfg.Publication), "messages 'true'"}
	if err := pglogrepl.StartReplication(ctx, repl, cfg.Slot, start, pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args}); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" {
			return slotBusy(cfg.Slot, 0)
		}
		return fmt.Errorf("start replication from slot %q at %s: %w", cfg.Slot, start, err)
	}
	s.outbox = newOutboxTracker(cfg.Outbox.DeleteCaptured)
	s.mu.Lock()
	if s.resnaps == nil {
		s.resnaps = &resnapshots{}
	}
	s.metas = metas
	s.mu.Unlock()
	r := &receiver{
		conn: repl, pool: pool, cfg: cfg, log: log, types: s.newTypes(),
		rels: map[uint32]*relation{}, rel: s.rel, outbox: s.outbox,
		out: make(chan []core.Change, 16), stop: make(chan struct{}), done: make(chan struct{}),
		resume: resume, sentLSN: start, resnaps: s.resnaps,
	}
	r.toast = &toaster{pool: pool, types: r.types}
	if cfg.Outbox.Table != "" {
		r.outboxOf = qualified(cfg.Outbox.Table)
	}
	lag := cdc.NewLag(env.Metrics, env.Name)
	bgctx, stop := context.WithCancel(context.Background())
	s.mu.Lock()
	s.recv, s.lag, s.stopBG, s.bgctx, s.state = r, lag, stop, bgctx, "streaming"
	if doSnap {
		s.state = "snapshot"
	}
	s.mu.Unlock()
	go r.run()
	s.bg.Go(func() { s.heartbeat(bgctx, pool, r, lag) })
	if outboxMeta != nil {
		s.bg.Go(func() { s.outbox.run(bgctx, pool, outboxMeta, log) })
	}
	if env.Admin != nil {
		unmount, err := env.Admin.Handle("POST /v1/connectors/"+env.Name+"/snapshot", s.snapshotHandler())
		if err != nil {
			return fmt.Errorf("mount the snapshot endpoint of connector %q on the admin listener: %w", env.Name, err)
		}
		s.mu.Lock()
		s.unmount = unmount
		s.mu.Unlock()
	}
	log.Info("streaming from replication slot", "slot", cfg.Slot, "publication", cfg.Publication, "start", start, "tables", len(metas))
	return nil
}

// textForms sets the session settings that fix the text forms the decoder
// reads, whatever the server's defaults, on every connection.
func textForms(p map[string]string, name string) {
	p["application_name"] = "tributary " + name
	p["DateStyle"] = "ISO, YMD"
	p["IntervalStyle"] = "iso_8601"
	p["TimeZone"] = "UTC"
	p["extra_float_digits"] = "3"
	p["bytea_output"] = "hex"
}

func keysOf(m map[string]*tableMeta) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

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
// closes the connections. It is bounded by ctx and safe to call twice.
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
		_ = repl.Close(ctx)
		if r != nil {
			<-r.done
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
