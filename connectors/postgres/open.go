package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// Open checks the server (wal_level, REPLICATION), creates or verifies the
// publication and the slot, starts the snapshot when one is due, and starts
// streaming from the slot: from the position after from, or from where a
// new snapshot is consistent. See README.md for the decisions.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if !s.configured {
		return core.Fatal(errNotConfigured)
	}
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
	pool, err := s.connect(ctx, env.Name, log)
	if err != nil {
		return err
	}
	if err := checkServer(ctx, pool); err != nil {
		return err
	}
	metas, outboxMeta, err := s.loadTables(ctx, pool)
	if err != nil {
		return err
	}
	slot, err := s.inspectSlot(ctx, pool)
	if err != nil {
		return err
	}
	repl, err := s.connectReplication(ctx, env.Name)
	if err != nil {
		return err
	}
	doSnap, err := cdc.Decide(cdc.SnapshotMode(s.cfg.Snapshot.Mode), !from.IsZero(), pos.IsSnapshot(), slot.exists)
	if err != nil {
		return core.Fatal(fmt.Errorf("slot %q: %w", s.cfg.Slot, err))
	}
	var sp startPoint
	if slot.exists {
		sp, err = resumePoint(slot, from, pos)
	} else {
		sp, err = s.createSlot(ctx, repl, doSnap, log)
	}
	if err != nil {
		return err
	}
	s.rel = newReleaser(sp.lsn, doSnap)
	if doSnap {
		if err := s.beginSnapshot(ctx, pool, metas, sp, log); err != nil {
			return err
		}
	}
	if err := s.startReplication(ctx, repl, sp.lsn); err != nil {
		return err
	}
	s.startStream(env, pool, repl, metas, outboxMeta, sp, doSnap, log)
	if err := s.mountSnapshotEndpoint(env); err != nil {
		return err
	}
	log.Info("streaming from replication slot", "slot", s.cfg.Slot, "publication", s.cfg.Publication, "start", sp.lsn, "tables", len(metas))
	return nil
}

// connect opens the pool of ordinary connections and checks that the
// server answers. The pool is the Source's from then on, for Close.
func (s *Source) connect(ctx context.Context, name string, log *slog.Logger) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(s.cfg.URL)
	if err != nil {
		return nil, core.Fatal(fmt.Errorf("parse url: %s", redactParseError(err)))
	}
	// The heartbeat, TOAST lookups, the outbox and on-demand snapshots
	// share three connections; each snapshot worker holds one of its own.
	pcfg.MaxConns = int32(3 + s.cfg.Snapshot.Parallel)
	textForms(pcfg.ConnConfig.RuntimeParams, name)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, connectError("connect to PostgreSQL", err)
	}
	s.mu.Lock()
	s.pool, s.log, s.closed = pool, log, false
	s.mu.Unlock()
	if err := pool.Ping(ctx); err != nil {
		return nil, connectError("connect to PostgreSQL", err)
	}
	return pool, nil
}

// loadTables creates or verifies the publication and loads the captured
// tables, by qualified name, checking that each has a replica identity
// (the outbox table needs none). It returns the outbox table's too, when
// outbox mode is on.
func (s *Source) loadTables(ctx context.Context, pool *pgxpool.Pool) (map[string]*tableMeta, *tableMeta, error) {
	cfg := &s.cfg
	tables, err := ensurePublication(ctx, pool, cfg)
	if err != nil {
		return nil, nil, err
	}
	metas := map[string]*tableMeta{}
	for _, t := range tables {
		m, err := loadTable(ctx, pool, t)
		if err != nil {
			return nil, nil, err
		}
		if err := m.checkIdentity(); err != nil && m.qualified() != qualified(cfg.Outbox.Table) {
			return nil, nil, err
		}
		metas[m.qualified()] = m
	}
	if cfg.Outbox.Table == "" {
		return metas, nil, nil
	}
	outboxMeta := metas[qualified(cfg.Outbox.Table)]
	if outboxMeta == nil {
		return nil, nil, core.Fatal(fmt.Errorf("outbox table %s is not in publication %q: add it (ALTER PUBLICATION %s ADD TABLE %s) or list it in tables", cfg.Outbox.Table, cfg.Publication, ident(cfg.Publication), cfg.Outbox.Table))
	}
	return metas, outboxMeta, nil
}

// inspectSlot reads the replication slot and, when it exists, checks that
// it is a pgoutput slot of this database that no one else is reading.
func (s *Source) inspectSlot(ctx context.Context, pool *pgxpool.Pool) (slotInfo, error) {
	var database string
	if err := pool.QueryRow(ctx, "select current_database()").Scan(&database); err != nil {
		return slotInfo{}, fmt.Errorf("read database name: %w", err)
	}
	slot, err := readSlot(ctx, pool, s.cfg.Slot)
	if err != nil {
		return slotInfo{}, err
	}
	if slot.exists {
		if err := checkSlot(slot, s.cfg.Slot, database); err != nil {
			return slotInfo{}, err
		}
	}
	return slot, nil
}

// connectReplication opens the replication connection, the Source's from
// then on, for Close.
func (s *Source) connectReplication(ctx context.Context, name string) (*pgconn.PgConn, error) {
	rcfg, err := pgconn.ParseConfig(s.cfg.URL)
	if err != nil {
		return nil, core.Fatal(fmt.Errorf("parse url: %s", redactParseError(err)))
	}
	rcfg.RuntimeParams["replication"] = "database"
	textForms(rcfg.RuntimeParams, name)
	repl, err := pgconn.ConnectConfig(ctx, rcfg)
	if err != nil {
		return nil, connectError("open replication connection", err)
	}
	s.mu.Lock()
	s.repl = repl
	s.mu.Unlock()
	return repl, nil
}

// startPoint is where a run starts: the position streaming starts from,
// and what a snapshot, when one is due, is consistent with.
type startPoint struct {
	// lsn is the position START_REPLICATION asks for.
	lsn pglogrepl.LSN
	// exported names the snapshot a new slot exported, for the snapshot
	// workers to import; empty for an existing slot.
	exported string
	// at is the position a snapshot is consistent with.
	at string
	// after is the last snapshot row committed, when a snapshot resumes.
	after *cdc.SnapshotPosition
	// resume is the first change the stream emits: changes at or before
	// the checkpoint were delivered before.
	resume ord
}

// createSlot creates the replication slot (with setup: auto), exporting
// its snapshot when one is due, and starts from its consistent point.
func (s *Source) createSlot(ctx context.Context, repl *pgconn.PgConn, doSnap bool, log *slog.Logger) (startPoint, error) {
	name := s.cfg.Slot
	if s.cfg.Setup == SetupVerify {
		return startPoint{}, core.Fatal(fmt.Errorf("replication slot %q does not exist and setup is %q: create it (SELECT pg_create_logical_replication_slot('%s', 'pgoutput')) or set setup: %s", name, SetupVerify, name, SetupAuto))
	}
	action := "NOEXPORT_SNAPSHOT"
	if doSnap {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42710" {
			return startPoint{}, fmt.Errorf("create replication slot %q: it was created meanwhile by another consumer; retrying", name)
		}
		return startPoint{}, fmt.Errorf("create replication slot %q: %w", name, err)
	}
	start, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return startPoint{}, fmt.Errorf("create replication slot %q: consistent point %q: %w", name, res.ConsistentPoint, err)
	}
	log.Info("replication slot created", "slot", name, "consistent_point", res.ConsistentPoint)
	return startPoint{lsn: start, exported: res.SnapshotName, at: res.ConsistentPoint, resume: ordStreamStart}, nil
}

// resumePoint is where a run on an existing slot starts: at the snapshot
// the checkpoint is in the middle of, after the change it names, or, with
// no checkpoint, at the slot's confirmed position.
func resumePoint(slot slotInfo, from core.Position, pos cdc.Position) (startPoint, error) {
	switch {
	case pos.IsSnapshot():
		start, err := pglogrepl.ParseLSN(pos.Snapshot.At)
		if err != nil {
			return startPoint{}, core.Fatal(fmt.Errorf("read checkpoint %s: %w", from, err))
		}
		return startPoint{lsn: start, at: pos.Snapshot.At, after: pos.Snapshot, resume: ordStreamStart}, nil
	case !from.IsZero():
		c, err := pglogrepl.ParseLSN(pos.Commit)
		if err != nil {
			return startPoint{}, core.Fatal(fmt.Errorf("read checkpoint %s: %w", from, err))
		}
		return startPoint{lsn: c, resume: ord{c, pos.Index}}, nil
	default:
		return startPoint{lsn: slot.confirmed, at: slot.confirmed.String(), resume: ordStreamStart}, nil
	}
}

// beginSnapshot starts the snapshot of the tables not yet read, consistent
// with sp.at. Every worker imports the exported snapshot here, before
// START_REPLICATION: the replication connection's next command ends the
// snapshot's life.
func (s *Source) beginSnapshot(ctx context.Context, pool *pgxpool.Pool, metas map[string]*tableMeta, sp startPoint, log *slog.Logger) error {
	outbox := ""
	if s.cfg.Outbox.Table != "" {
		outbox = qualified(s.cfg.Outbox.Table)
	}
	sr := newSnapshotReader(cdc.NewPlan(keysOf(metas)).Remaining(sp.after), sp.after, metas, sp.at,
		s.cfg.Snapshot.ChunkSize, s.cfg.Snapshot.Parallel, outbox, s.newTypes)
	if err := sr.begin(ctx, pool, sp.exported); err != nil {
		return err
	}
	s.mu.Lock()
	s.snap = sr
	s.mu.Unlock()
	log.Info("snapshot started", "tables", len(sr.steps), "parallel", sr.parallel, "consistent_with", sp.at, "exported", sp.exported != "")
	return nil
}

// startReplication asks the server to stream the publication's changes
// from the slot, from start on.
func (s *Source) startReplication(ctx context.Context, repl *pgconn.PgConn, start pglogrepl.LSN) error {
	args := []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", s.cfg.Publication), "messages 'true'"}
	err := pglogrepl.StartReplication(ctx, repl, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" {
			return slotBusy(s.cfg.Slot, 0)
		}
		return fmt.Errorf("start replication from slot %q at %s: %w", s.cfg.Slot, start, err)
	}
	return nil
}

// startStream starts the receiver that reads the replication stream, the
// heartbeat and, in outbox mode, the outbox cleaner; they run until Close.
func (s *Source) startStream(env core.Env, pool *pgxpool.Pool, repl *pgconn.PgConn, metas map[string]*tableMeta, outboxMeta *tableMeta, sp startPoint, doSnap bool, log *slog.Logger) {
	cfg := &s.cfg
	s.outbox = newOutboxTracker(cfg.Outbox.DeleteCaptured)
	s.mu.Lock()
	if s.resnaps == nil {
		s.resnaps = &resnapshots{}
	}
	s.metas = metas
	s.mu.Unlock()
	// out holds one batch decoded ahead of Read, the one being filled
	// another: at most about 2 x max_batch changes wait in the connector
	// (16 batches waiting made a 1M-row catch-up peak 70 MB higher).
	r := &receiver{
		conn: repl, pool: pool, cfg: cfg, log: log, types: s.newTypes(),
		rels: map[uint32]*relation{}, rel: s.rel, outbox: s.outbox,
		out: make(chan []core.Change, 1), stop: make(chan struct{}), done: make(chan struct{}),
		resume: sp.resume, sentLSN: sp.lsn, resnaps: s.resnaps,
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
}

// mountSnapshotEndpoint serves on-demand snapshots of one table on the
// admin listener, when there is one; Close unmounts it.
func (s *Source) mountSnapshotEndpoint(env core.Env) error {
	if env.Admin == nil {
		return nil
	}
	unmount, err := env.Admin.Handle("POST /v1/connectors/"+env.Name+"/snapshot", s.snapshotHandler())
	if err != nil {
		return fmt.Errorf("mount the snapshot endpoint of connector %q on the admin listener: %w", env.Name, err)
	}
	s.mu.Lock()
	s.unmount = unmount
	s.mu.Unlock()
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
