// Package mysql registers the "mysql_cdc" source connector: the row
// changes of MySQL and MariaDB tables read from the binlog as a replica
// (go-mysql's replication package), decoded with a durable schema history,
// after a consistent, resumable snapshot of their rows. See README.md.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	driver "github.com/go-sql-driver/mysql"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "mysql_cdc"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Streams inserts, updates, deletes, truncates and schema changes of MySQL and MariaDB tables from the binlog, after a consistent, resumable snapshot.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the mysql_cdc connector.
type Source struct {
	cfg        Config
	dsn        dsn
	configured bool

	mu      sync.Mutex // guards the fields below against Status and Close
	db      *sql.DB
	syncer  *replication.BinlogSyncer
	stream  *replication.BinlogStreamer
	q       *queue
	rd      *reader
	snap    *snapshotReader
	start   func() error // starts the stream once the snapshot is done
	info    serverInfo
	hist    *history
	closed  bool
	log     *slog.Logger
	phase   string
	pruned  time.Time
	watchWG sync.WaitGroup
	resnaps *resnapshots
	unmount func()
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

// Configure decodes the configuration, with its declared defaults, and
// validates it. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d, _ := parseDSN(cfg.DSN)
	s.cfg, s.dsn, s.configured = cfg, d, true
	return nil
}

// Open checks the server, decides between snapshot and stream, and starts
// reading: from the checkpoint's transaction, from a new snapshot's place,
// or (snapshot mode never, no checkpoint) from the binlog's end.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if !s.configured {
		return core.Fatal(errors.New("mysql_cdc source used before Configure"))
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
	db, err := s.openDB()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.db, s.log, s.closed, s.phase = db, log, false, "opening"
	s.mu.Unlock()

	ourID := s.cfg.serverID(env.Name)
	host := "tributary-" + env.Name
	info, err := inspectServer(ctx, db, ourID, host)
	if err != nil {
		return err
	}
	for _, w := range info.warnings {
		log.Warn("server setting", "problem", w)
	}
	captured, dbs, err := s.capturedTables(ctx, db)
	if err != nil {
		return err
	}
	capSet, trackSet := keySet(captured), keySet(dbs)
	stateDir := env.StateDir
	if stateDir == "" {
		return core.Fatal(errors.New("mysql_cdc needs a state directory for its schema history"))
	}
	hist, err := openHistory(stateDir, info.flavor)
	if err != nil {
		return core.Fatal(err)
	}
	// Where the stream starts, and whether a snapshot comes first.
	startAt, kept, lost, err := checkpointPlace(ctx, db, info.flavor, from, pos)
	if err != nil {
		return err
	}
	doSnap, err := cdc.Decide(cdc.SnapshotMode(s.cfg.Snapshot.Mode), !from.IsZero(), pos.IsSnapshot(), kept)
	if err != nil {
		return core.Fatal(fmt.Errorf("binlog position %s of the checkpoint is no longer on the server (%s): %w", startAt, lost, errors.Join(err, errPurged)))
	}
	if !kept {
		log.Warn("the binlog behind the checkpoint was purged; snapshotting again", "position", startAt.String(), "server", lost)
		pos = cdc.Position{}
	}
	var sch schema
	var snapConn *sql.Conn
	resume, resumeIdx := "", 0
	switch {
	case doSnap && pos.IsSnapshot():
		if snapConn, _, err = beginSnapshot(ctx, db, info.flavor, false); err != nil {
			return err
		}
	case doSnap:
		if snapConn, startAt, err = beginSnapshot(ctx, db, info.flavor, true); err != nil {
			return err
		}
	case from.IsZero():
		if startAt, err = currentPlace(ctx, db, info.flavor); err != nil {
			return fmt.Errorf("read the binlog position: %w", err)
		}
	default:
		if !strings.HasPrefix(pos.Commit, heartbeatPrefix) && !strings.HasPrefix(pos.Commit, "rs:") {
			resume, resumeIdx = pos.Commit, pos.Index
		}
	}
	if sch, err = startSchema(ctx, db, log, hist, dbs, captured, startAt, !from.IsZero() && kept); err != nil {
		if snapConn != nil {
			snapConn.Close()
		}
		return err
	}
	q := newQueue(s.cfg.MaxBatch)
	rs, err := s.mountSnapshot(env)
	if err != nil {
		return err
	}
	rd := &reader{
		db: db, chunkSize: s.cfg.Snapshot.ChunkSize, resnaps: rs,
		flavor: info.flavor, log: log, q: q, hist: hist, sch: sch, captured: capSet,
		applier:  ddlApplier{tracked: func(d string) bool { return trackSet[strings.ToLower(d)] }, captured: func(d, t string) bool { return capSet[tableKey(d, t)] }},
		interval: s.cfg.Heartbeat.Interval, cur: startAt.clone(), file: startAt.file,
		resume: resume, resumeIdx: resumeIdx, lastOut: time.Now(),
	}
	s.mu.Lock()
	s.info, s.hist, s.q, s.rd, s.phase = info, hist, q, rd, "streaming"
	s.mu.Unlock()
	startStream := func() error { return s.startStream(env.Name, ourID, host, info.flavor, startAt, rd) }
	if doSnap {
		var sp *cdc.SnapshotPosition
		if pos.IsSnapshot() {
			sp = pos.Snapshot
		}
		sr := newSnapshotReader(snapConn, sch, captured, sp, startAt.String(), s.cfg.Snapshot.ChunkSize)
		s.mu.Lock()
		s.snap, s.start, s.phase = sr, startStream, "snapshot"
		s.mu.Unlock()
		log.Info("snapshot started", "tables", len(sr.steps), "consistent_with", startAt.String())
		return nil
	}
	return startStream()
}

// checkpointPlace returns where the checkpoint from (decoded as pos)
// resumes the binlog, and whether the server still holds it (lost names
// the oldest binlog it holds when not). Without a checkpoint, startAt is
// zero and kept true.
func checkpointPlace(ctx context.Context, db *sql.DB, fl string, from core.Position, pos cdc.Position) (startAt binlogPos, kept bool, lost string, err error) {
	if from.IsZero() {
		return startAt, true, "", nil
	}
	commit := pos.Commit
	if pos.IsSnapshot() {
		commit = pos.Snapshot.At
	}
	if startAt, err = parsePos(fl, commit); err != nil {
		return startAt, false, "", core.Fatal(fmt.Errorf("read checkpoint %s: %w: remove the checkpoint to start over", from, err))
	}
	kept, lost, err = checkKept(ctx, db, fl, startAt)
	return startAt, kept, lost, err
}

// openDB opens the connection pool Open queries the server with: times
// in UTC, no SQL mode that could change what the server returns.
func (s *Source) openDB() (*sql.DB, error) {
	dc := s.dsn.cfg.Clone()
	dc.ParseTime = false
	dc.InterpolateParams = true
	if dc.Params == nil {
		dc.Params = map[string]string{}
	}
	dc.Params["time_zone"] = "'+00:00'"
	dc.Params["sql_mode"] = "''"
	conn, err := driver.NewConnector(dc)
	if err != nil {
		return nil, core.Fatal(fmt.Errorf("dsn: %w", err))
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	return db, nil
}

// keySet returns the lowercase members of keys as a set.
func keySet(keys []string) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[strings.ToLower(k)] = true
	}
	return out
}

// startSchema returns the schema the stream starts with at startAt: the
// history's when the checkpoint's place is kept (fromCheckpoint), else the
// tables' current schema, recorded in the history. Every captured table
// must be in it.
func startSchema(ctx context.Context, db *sql.DB, log *slog.Logger, hist *history, dbs, captured []string, startAt binlogPos, fromCheckpoint bool) (schema, error) {
	sch, ok := hist.at(startAt)
	if !ok || !fromCheckpoint {
		if fromCheckpoint {
			log.Warn("no schema history for the checkpoint (state directory new or removed): decoding with the tables' current schema", "position", startAt.String())
		}
		var err error
		if sch, err = loadSchema(ctx, db, dbs); err != nil {
			return nil, err
		}
		if err := hist.record(startAt, "", sch); err != nil {
			return nil, core.Fatal(err)
		}
	}
	for _, c := range captured {
		if sch[c] == nil {
			return nil, core.Fatal(fmt.Errorf("table %s does not exist: create it or remove it from tables", c))
		}
	}
	return sch, nil
}

// mountSnapshot ends an on-demand snapshot a restart interrupted and
// mounts the snapshot endpoint on the admin listener.
func (s *Source) mountSnapshot(env core.Env) (*resnapshots, error) {
	s.mu.Lock()
	if s.resnaps == nil {
		s.resnaps = &resnapshots{}
	}
	rs := s.resnaps
	s.mu.Unlock()
	if cur := rs.active(); cur != nil {
		rs.finish(cur, errors.New("interrupted by a restart of the connector: request it again"))
	}
	if env.Admin != nil {
		unmount, err := env.Admin.Handle("POST /v1/connectors/"+env.Name+"/snapshot", s.snapshotHandler())
		if err != nil {
			return nil, fmt.Errorf("mount the snapshot endpoint of connector %q on the admin listener: %w", env.Name, err)
		}
		s.mu.Lock()
		s.unmount = unmount
		s.mu.Unlock()
	}
	return rs, nil
}

// capturedTables returns the captured tables (lowercase db.table keys)
// and the databases they are in.
func (s *Source) capturedTables(ctx context.Context, db *sql.DB) ([]string, []string, error) {
	var out []string
	dbs := map[string]string{}
	if len(s.cfg.Tables) == 0 {
		rows, err := db.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", s.dsn.db)
		if err != nil {
			return nil, nil, fmt.Errorf("list the tables of %s: %w", s.dsn.db, err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return nil, nil, err
			}
			out = append(out, tableKey(s.dsn.db, n))
		}
		dbs[strings.ToLower(s.dsn.db)] = s.dsn.db
	}
	for _, t := range s.cfg.Tables {
		d, n, _ := splitTable(t, s.dsn.db)
		out = append(out, tableKey(d, n))
		dbs[strings.ToLower(d)] = d
	}
	var dl []string
	for _, d := range dbs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	return out, dl, nil
}

// startStream connects as a replica and streams from startAt.
func (s *Source) startStream(name string, serverID uint32, host, flavor string, startAt binlogPos, rd *reader) error {
	cfg := replication.BinlogSyncerConfig{
		ServerID: serverID, Flavor: flavor, Host: s.dsn.host, Port: s.dsn.port,
		User: s.dsn.user, Password: s.dsn.password, Localhost: host, Charset: "utf8mb4",
		// ParseTime: DATETIME and TIMESTAMP values come as times rather
		// than text the syncer formats with fmt.Sprintf (decodeBinlog).
		ParseTime: true, TimestampStringLocation: time.UTC, HeartbeatPeriod: s.cfg.Heartbeat.Interval,
		ReadTimeout: s.cfg.Heartbeat.Interval*3 + 10*time.Second, DisableRetrySync: true,
		SynchronousEventHandler: rd, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		FillZeroLogPos: flavor == gomysql.MariaDBFlavor,
	}
	syncer := replication.NewBinlogSyncer(cfg)
	var bs *replication.BinlogStreamer
	var err error
	if startAt.gtid != nil {
		bs, err = syncer.StartSyncGTID(startAt.gtid.Clone())
	} else {
		bs, err = syncer.StartSync(gomysql.Position{Name: startAt.file, Pos: startAt.pos})
	}
	if err != nil {
		syncer.Close()
		return fmt.Errorf("start reading the binlog at %s: %w", startAt, err)
	}
	s.mu.Lock()
	s.syncer, s.stream, s.phase = syncer, bs, "streaming"
	closed := s.closed
	s.mu.Unlock()
	if closed {
		syncer.Close()
		return errors.New("mysql_cdc source closed")
	}
	// The stream's end (an error, or Close) reaches Read through the queue.
	ctx, cancel := context.WithCancel(context.Background())
	s.watchWG.Go(func() {
		defer cancel()
		_, err := bs.GetEvent(ctx)
		rd.q.finish(streamError(err, startAt))
	})
	go func() {
		<-rd.q.stop
		cancel()
	}()
	s.log.Info("streaming the binlog", "from", startAt.String(), "server_id", serverID)
	return nil
}

// streamError names what stopped the stream and, for a purged binlog, the
// way out.
func streamError(err error, startAt binlogPos) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return errQueueStopped
	}
	var me *gomysql.MyError
	if errors.As(err, &me) && me.Code == 1236 {
		return core.Fatal(fmt.Errorf("the server cannot send the binlog from %s: %s: %w; set snapshot.mode: %s to read the tables again, or remove the checkpoint to start over", startAt, me.Message, errPurged, cdc.SnapshotWhenNeeded))
	}
	return fmt.Errorf("binlog stream: %w", err)
}

// Read returns the next changes: snapshot rows first, then the stream.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	sr, q, start := s.snap, s.q, s.start
	s.mu.Unlock()
	if q == nil {
		return nil, core.Fatal(errors.New("mysql_cdc source read before Open"))
	}
	if sr != nil {
		chs, err := sr.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if sr.done() {
			sr.close()
			s.mu.Lock()
			s.snap, s.start = nil, nil
			s.mu.Unlock()
			s.log.Info("snapshot done")
			if err := start(); err != nil {
				return nil, err
			}
		}
		if len(chs) > 0 {
			return chs, nil
		}
	}
	return q.take(ctx)
}

// Ack records the confirmed position and, at most once a minute, drops
// the schema history entries no checkpoint needs any more.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	p, err := cdc.DecodePosition(pos)
	if err != nil {
		return err
	}
	s.mu.Lock()
	rd, hist, flavor := s.rd, s.hist, s.info.flavor
	prune := time.Since(s.pruned) > time.Minute
	if prune {
		s.pruned = time.Now()
	}
	s.mu.Unlock()
	if rd == nil || p.IsSnapshot() {
		return nil
	}
	rd.mu.Lock()
	rd.confirmed = p.Commit
	rd.mu.Unlock()
	if prune && hist != nil {
		bp, err := parsePos(flavor, p.Commit)
		if err != nil {
			return err
		}
		return hist.prune(bp)
	}
	return nil
}

// Close stops the stream and the snapshot and closes the connections. It
// is bounded by ctx and safe to call twice.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	syncer, q, sr, db, unmount := s.syncer, s.q, s.snap, s.db, s.unmount
	s.syncer, s.snap, s.db, s.start, s.phase, s.unmount = nil, nil, nil, nil, "closed", nil
	s.mu.Unlock()
	if unmount != nil {
		unmount()
	}
	if q != nil {
		q.halt()
	}
	if syncer != nil {
		done := make(chan struct{})
		go func() {
			syncer.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	s.watchWG.Wait()
	if sr != nil {
		sr.close()
	}
	if db != nil {
		db.Close()
	}
	return nil
}

// Status reports the phase, the flavour, the confirmed position and the
// server settings that lose something.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := map[string]any{"phase": s.phase, "flavor": s.info.flavor, "server_version": s.info.version}
	if len(s.info.warnings) > 0 {
		st["warnings"] = s.info.warnings
	}
	if s.info.retention > 0 {
		st["binlog_retention_seconds"] = s.info.retention
	}
	if s.resnaps != nil {
		if rs := s.resnaps.status(); rs != nil {
			st["on_demand_snapshot"] = rs
		}
	}
	if s.rd != nil {
		s.rd.mu.Lock()
		st["confirmed"] = s.rd.confirmed
		s.rd.mu.Unlock()
	}
	return st
}

// Health returns nil while the binlog stream or the snapshot is running.
func (s *Source) Health(ctx context.Context) error {
	s.mu.Lock()
	q, closed := s.q, s.closed
	s.mu.Unlock()
	if q == nil || closed {
		return errors.New("mysql_cdc source is not open")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.done {
		return fmt.Errorf("binlog stream stopped: %v", q.err)
	}
	return nil
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
