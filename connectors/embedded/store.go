package embedded

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrClosed is returned by operations on a closed stream, publisher or
// subscriber.
var ErrClosed = errors.New("embedded stream closed")

// schemaVersion is stored in PRAGMA user_version. Schemas only grow.
const schemaVersion = 1

// schema creates the tables of schemaVersion, in one transaction.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS messages (
		"offset"     INTEGER PRIMARY KEY AUTOINCREMENT,
		topic        TEXT    NOT NULL,
		uuid         TEXT    NOT NULL,
		key          TEXT    NOT NULL DEFAULT '',
		metadata     BLOB,
		payload      BLOB,
		published_at INTEGER NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS messages_topic_offset ON messages (topic, "offset")`,
	`CREATE INDEX IF NOT EXISTS messages_published_at ON messages (published_at)`,
	`CREATE TABLE IF NOT EXISTS consumer_offsets (
		"group"  TEXT    NOT NULL,
		topic    TEXT    NOT NULL,
		"offset" INTEGER NOT NULL,
		PRIMARY KEY ("group", topic)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS consumer_leases (
		"group"    TEXT    NOT NULL,
		topic      TEXT    NOT NULL,
		owner      TEXT    NOT NULL,
		expires_at INTEGER NOT NULL,
		PRIMARY KEY ("group", topic)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS checkpoints (
		connector  TEXT NOT NULL PRIMARY KEY,
		checkpoint TEXT NOT NULL
	) WITHOUT ROWID`,
	fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion),
}

// setup creates the schema in a new file, and checks an existing one
// without writing to it.
func (st *store) setup(ctx context.Context) error {
	var version int
	if err := st.wconn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build's %d; upgrade tributary", version, schemaVersion)
	}
	if version < schemaVersion {
		// The page size only applies to a new file, and before WAL is
		// on. Large pages mean fewer log frames (and write calls) per
		// message.
		if _, err := st.wconn.ExecContext(ctx, "PRAGMA page_size = 16384"); err != nil {
			return fmt.Errorf("set page size: %w", err)
		}
		if _, err := st.wconn.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
			return fmt.Errorf("set journal mode: %w", err)
		}
		if _, err := st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		for _, stmt := range schema {
			if _, err := st.wconn.ExecContext(ctx, stmt); err != nil {
				_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if _, err := st.wconn.ExecContext(ctx, "COMMIT"); err != nil {
			_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("create schema: %w", err)
		}
	}
	var jm string
	if err := st.wconn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&jm); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if jm != "wal" {
		return fmt.Errorf("journal mode is %q, not wal; is the file on a file system without shared memory support?", jm)
	}
	return nil
}

// isBusy reports whether err is SQLite's "database is locked", which some
// moments of another connection's life (opening or closing the log)
// return without waiting for the busy timeout.
func isBusy(err error) bool {
	var se interface{ Code() int }
	return errors.As(err, &se) && se.Code()&0xff == 5 // SQLITE_BUSY
}

// setupRetrying runs setup, retrying while the file is busy, as long as
// ctx allows.
func (st *store) setupRetrying(ctx context.Context) error {
	wait := 10 * time.Millisecond
	for {
		err := st.setup(ctx)
		if err == nil || !isBusy(err) {
			return err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

const (
	// queueSize bounds the operations waiting for the writer.
	queueSize = 8192
	// maxBatchRows bounds the messages written in one transaction.
	maxBatchRows = 4096
	// readBatch is how many messages a subscription reads per query.
	readBatch = 256
	// pollInterval is how often an idle subscription looks for messages
	// written by another process.
	pollInterval = time.Second
	// pruneRows bounds the rows deleted per pruning statement, so that
	// pruning a large backlog never stalls publishers for long.
	pruneRows = 5000
)

// insertRows is how many rows one multi-row INSERT holds.
const insertRows = 32

func insertSQL(rows int) string {
	var b strings.Builder
	// OR ROLLBACK: a failing row fails the whole transaction anyway, and
	// it spares SQLite a statement journal per multi-row statement.
	b.WriteString(`INSERT OR ROLLBACK INTO messages (topic, uuid, key, metadata, payload, published_at) VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// row is one message ready to be inserted.
type row struct {
	topic    string
	uuid     string
	key      string
	metadata []byte
	payload  []byte
}

// offsetCommit is a consumer group's last acknowledged offset on a topic.
// With latest set, the writer stores the group's offset as it is when the
// transaction is written, so that a burst of acks costs one queued op.
type offsetCommit struct {
	group  string
	topic  string
	offset int64
	latest *group
}

// op is one unit of work for the writer. Every op in a batch is written in
// one transaction, then its done is called.
type op struct {
	rows       []row
	commit     *offsetCommit
	checkpoint *checkpointRow
	lease      *leaseReq
	done       func(error)
}

// leaseReq takes, renews (hold) or gives up (!hold) a consumer group's
// lease on a topic, which says which process reads for the group.
type leaseReq struct {
	key  offsetKey
	hold bool
	got  bool // set by the writer: the lease is ours until the TTL
}

type checkpointRow struct {
	connector string
	data      string
}

// stored is a message read back from the database.
type stored struct {
	offset   int64
	uuid     string
	metadata map[string]string
	payload  []byte
}

// store is an open stream database: a single writer goroutine that group
// commits every queued operation, and a pool of readers.
type store struct {
	file      string
	logger    *slog.Logger
	retention time.Duration
	pruneIv   time.Duration

	wdb       *sql.DB
	wconn     *sql.Conn
	insert    *sql.Stmt // one row
	insertN   *sql.Stmt // insertRows rows
	commit    *sql.Stmt
	saveCP    *sql.Stmt
	takeLease *sql.Stmt
	dropLease *sql.Stmt
	owner     string // this store's lease owner id

	rdb      *sql.DB
	read     *sql.Stmt
	loadCP   *sql.Stmt
	loadOff  *sql.Stmt
	lastSeq  *sql.Stmt
	fromTime *sql.Stmt

	queue   chan *op
	mu      sync.Mutex // guards closed and senders.Add
	closed  bool
	senders sync.WaitGroup
	abort   atomic.Bool
	aborted atomic.Int64 // ops failed because the flush was cut short
	done    chan struct{}

	ckptStop context.CancelFunc
	ckptCtx  context.Context
	ckptDone chan struct{}

	notifyMu sync.Mutex
	notifyCh chan struct{}
	lastAt   int64 // last published_at, only touched by the writer

	groupsMu sync.Mutex
	groups   map[offsetKey]*group
	subsMu   sync.Mutex
	subs     map[*Subscriber]struct{}
}

type offsetKey struct{ group, topic string }

func dsn(file string, mode SyncMode, txlock string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if txlock != "" {
		// The writer's cache holds a whole batch, so that no page
		// spills to the log before the commit.
		q.Add("_pragma", "cache_size(-65536)")
		// Checkpoints run in the background (see checkpointLoop); the
		// writer checkpoints only as a safety net when the log grows
		// past 256 MiB.
		q.Add("_pragma", "wal_autocheckpoint(16384)")
		// Statement journals, when any, cost no write calls in memory.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
	if mode == SyncNormal {
		q.Add("_pragma", "synchronous(NORMAL)")
	} else {
		q.Add("_pragma", "synchronous(FULL)")
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	return file + "?" + q.Encode()
}

// openStore opens (creating when needed) the database at file and starts
// the writer. On error everything opened so far is closed again.
func openStore(ctx context.Context, file string, cfg Config, logger *slog.Logger) (_ *store, err error) {
	st := &store{
		file:      file,
		logger:    logger,
		retention: cfg.Retention,
		pruneIv:   cfg.pruneInterval(),
		queue:     make(chan *op, queueSize),
		done:      make(chan struct{}),
		notifyCh:  make(chan struct{}),
		groups:    map[offsetKey]*group{},
		owner:     newOwner(),
		ckptDone:  make(chan struct{}),
		subs:      map[*Subscriber]struct{}{},
	}
	st.ckptCtx, st.ckptStop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			st.ckptStop()
			_ = st.release() // the open error says more
		}
	}()
	st.wdb, err = sql.Open("sqlite", dsn(file, cfg.Sync, "immediate"))
	if err != nil {
		return nil, fmt.Errorf("open stream database %q: %w", file, err)
	}
	st.wdb.SetMaxOpenConns(1)
	st.wconn, err = st.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream database %q (path must name a SQLite file, or a new file in a writable directory): %w", file, err)
	}
	if err = st.setupRetrying(ctx); err != nil {
		return nil, fmt.Errorf("open stream database %q (path must name a SQLite file, or a new file in a writable directory): %w", file, err)
	}
	prep := func(c interface {
		PrepareContext(context.Context, string) (*sql.Stmt, error)
	}, q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var s *sql.Stmt
		s, err = c.PrepareContext(ctx, q)
		if err != nil {
			err = fmt.Errorf("prepare statement on stream database %q: %w", file, err)
		}
		return s
	}
	st.insert = prep(st.wconn, insertSQL(1))
	st.insertN = prep(st.wconn, insertSQL(insertRows))
	st.commit = prep(st.wconn, `INSERT INTO consumer_offsets ("group", topic, "offset") VALUES (?, ?, ?)
		ON CONFLICT ("group", topic) DO UPDATE SET "offset" = excluded."offset"`)
	st.saveCP = prep(st.wconn, `INSERT INTO checkpoints (connector, checkpoint) VALUES (?, ?)
		ON CONFLICT (connector) DO UPDATE SET checkpoint = excluded.checkpoint`)
	st.takeLease = prep(st.wconn, `INSERT INTO consumer_leases ("group", topic, owner, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT ("group", topic) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE consumer_leases.owner = excluded.owner OR consumer_leases.expires_at < ?`)
	st.dropLease = prep(st.wconn, `DELETE FROM consumer_leases WHERE "group" = ? AND topic = ? AND owner = ?`)
	if err != nil {
		return nil, err
	}

	st.rdb, err = sql.Open("sqlite", dsn(file, cfg.Sync, ""))
	if err != nil {
		return nil, fmt.Errorf("open stream database %q for reading: %w", file, err)
	}
	st.rdb.SetMaxOpenConns(8)
	st.rdb.SetMaxIdleConns(8)
	st.read = prep(st.rdb, `SELECT "offset", uuid, metadata, payload FROM messages
		WHERE topic = ? AND "offset" > ? ORDER BY "offset" LIMIT ?`)
	st.loadCP = prep(st.rdb, `SELECT checkpoint FROM checkpoints WHERE connector = ?`)
	st.loadOff = prep(st.rdb, `SELECT "offset" FROM consumer_offsets WHERE "group" = ? AND topic = ?`)
	st.lastSeq = prep(st.rdb, `SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0)`)
	st.fromTime = prep(st.rdb, `SELECT MIN("offset") FROM messages WHERE published_at >= ?`)
	if err != nil {
		return nil, err
	}
	if err = st.wconn.QueryRowContext(ctx, `SELECT COALESCE(MAX(published_at), 0) FROM messages`).Scan(&st.lastAt); err != nil {
		return nil, fmt.Errorf("read last publish time of stream database %q: %w", file, err)
	}
	go st.run()
	go st.checkpointLoop()
	return st, nil
}

// release closes the statements and databases, ignoring what was never
// opened.
func (st *store) release() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.insert, st.insertN, st.commit, st.saveCP, st.takeLease, st.dropLease, st.read, st.loadCP, st.loadOff, st.lastSeq, st.fromTime} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	if st.wconn != nil {
		errs = append(errs, st.wconn.Close())
	}
	if st.wdb != nil {
		errs = append(errs, st.wdb.Close())
	}
	if st.rdb != nil {
		errs = append(errs, st.rdb.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close stream database %q: %w", st.file, err)
	}
	return nil
}

// enqueue hands o to the writer. It blocks while the queue is full, no
// longer than ctx allows. When it returns nil, o.done will be called.
func (st *store) enqueue(ctx context.Context, o *op) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return ErrClosed
	}
	st.senders.Add(1)
	st.mu.Unlock()
	defer st.senders.Done()
	select {
	case st.queue <- o:
		return nil
	default:
	}
	select {
	case st.queue <- o:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("enqueue write to stream database %q: %w", st.file, ctx.Err())
	}
}

// changed returns a channel closed at the next commit of new messages.
func (st *store) changed() <-chan struct{} {
	st.notifyMu.Lock()
	defer st.notifyMu.Unlock()
	return st.notifyCh
}

func (st *store) broadcast() {
	st.notifyMu.Lock()
	close(st.notifyCh)
	st.notifyCh = make(chan struct{})
	st.notifyMu.Unlock()
}

// run is the writer: it drains the queue into transactions until the queue
// is closed.
func (st *store) run() {
	defer close(st.done)
	var prune <-chan time.Time
	if st.retention > 0 {
		t := time.NewTicker(st.pruneIv)
		defer t.Stop()
		prune = t.C
	}
	batch := make([]*op, 0, 512)
	for {
		select {
		case o, ok := <-st.queue:
			if !ok {
				return
			}
			batch = append(batch[:0], o)
			rows := len(o.rows)
			open := true
		drain:
			for rows < maxBatchRows {
				select {
				case o, ok := <-st.queue:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, o)
					rows += len(o.rows)
				default:
					break drain
				}
			}
			st.write(batch)
			clear(batch)
			if !open {
				return
			}
		case <-prune:
			if !st.abort.Load() {
				st.prune()
			}
		}
	}
}

// write stores batch in one transaction, then reports to every op.
func (st *store) write(batch []*op) {
	err := ErrClosed
	if !st.abort.Load() {
		err = st.writeTx(batch)
		// Another process may hold the file for longer than the busy
		// timeout, or be opening or closing the log: try again for a
		// few seconds before failing the batch.
		for wait := 10 * time.Millisecond; isBusy(err) && wait < 2*time.Second && !st.abort.Load(); wait *= 2 {
			time.Sleep(wait)
			err = st.writeTx(batch)
		}
	} else {
		st.aborted.Add(int64(len(batch)))
	}
	inserted := false
	for _, o := range batch {
		if len(o.rows) > 0 {
			inserted = true
		}
		if o.done != nil {
			o.done(err)
		}
	}
	if err == nil && inserted {
		st.broadcast()
	}
	if err != nil && !errors.Is(err, ErrClosed) {
		st.logger.Error("write to stream database failed", "file", st.file, "ops", len(batch), "error", err)
	}
}

func (st *store) writeTx(batch []*op) (err error) {
	ctx := context.Background()
	if _, err = st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		// A transaction left open by a failed rollback would fail every
		// later write: end it and try once more.
		_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
		if _, err = st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return fmt.Errorf("begin write to stream database %q: %w", st.file, err)
		}
	}
	defer func() {
		if err != nil {
			// INSERT OR ROLLBACK may have ended the transaction already,
			// so a failing rollback says nothing more.
			_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	at := max(time.Now().UnixNano(), st.lastAt)
	var commits map[offsetKey]int64
	args := make([]any, 0, insertRows*6)
	flush := func(stmt *sql.Stmt) error {
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert %d messages: %w", len(args)/6, err)
		}
		args = args[:0]
		return nil
	}
	// Rows go in statements of insertRows rows, in queue order, so that
	// offsets follow the order publishes were enqueued in.
	for _, o := range batch {
		for i := range o.rows {
			r := &o.rows[i]
			args = append(args, r.topic, r.uuid, r.key, r.metadata, r.payload, at)
			if len(args) == insertRows*6 {
				if err = flush(st.insertN); err != nil {
					return err
				}
			}
		}
		if o.commit != nil {
			if commits == nil {
				commits = map[offsetKey]int64{}
			}
			off := o.commit.offset
			if g := o.commit.latest; g != nil {
				g.mu.Lock()
				off, g.pending = g.offset, false
				g.mu.Unlock()
			}
			commits[offsetKey{o.commit.group, o.commit.topic}] = off
		}
		if o.lease != nil {
			if err = st.writeLease(ctx, o.lease); err != nil {
				return err
			}
		}
		if o.checkpoint != nil {
			if _, err = st.saveCP.ExecContext(ctx, o.checkpoint.connector, o.checkpoint.data); err != nil {
				return fmt.Errorf("save checkpoint of %q: %w", o.checkpoint.connector, err)
			}
		}
	}
	for i := 0; i < len(args); i += 6 {
		if _, err = st.insert.ExecContext(ctx, args[i:i+6]...); err != nil {
			return fmt.Errorf("insert message %q: %w", args[i+1], err)
		}
	}
	for k, off := range commits {
		if _, err = st.commit.ExecContext(ctx, k.group, k.topic, off); err != nil {
			return fmt.Errorf("commit offset of group %q on topic %q: %w", k.group, k.topic, err)
		}
	}
	if _, err = st.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit write to stream database %q: %w", st.file, err)
	}
	st.lastAt = at
	return nil
}

// prune deletes messages older than the retention, a bounded number of rows
// at a time.
func (st *store) prune() {
	cutoff := time.Now().Add(-st.retention).UnixNano()
	ctx := context.Background()
	for range 20 {
		res, err := st.wconn.ExecContext(ctx, `DELETE FROM messages WHERE "offset" IN
			(SELECT "offset" FROM messages WHERE published_at < ? ORDER BY published_at LIMIT ?)`, cutoff, pruneRows)
		if err != nil {
			st.logger.Error("prune stream database failed", "file", st.file, "error", err)
			return
		}
		if n, _ := res.RowsAffected(); n < pruneRows {
			return
		}
	}
}

// shutdown stops intake, lets the writer drain the queue (or fail what is
// left once ctx is done), then closes the database.
func (st *store) shutdown(ctx context.Context) error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		<-st.done
		return nil
	}
	st.closed = true
	st.mu.Unlock()

	var ctxErr error
	waited := make(chan struct{})
	go func() {
		st.senders.Wait()
		close(st.queue)
		close(waited)
	}()
	select {
	case <-waited:
		select {
		case <-st.done:
		case <-ctx.Done():
			ctxErr = ctx.Err()
		}
	case <-ctx.Done():
		ctxErr = ctx.Err()
	}
	if ctxErr != nil {
		// Fail what is still queued; the writer finishes at most the
		// transaction it is in.
		st.abort.Store(true)
		<-waited
		<-st.done
		if n := st.aborted.Load(); n > 0 {
			ctxErr = fmt.Errorf("flush stream database %q: %d queued writes failed: %w", st.file, n, ctxErr)
		} else {
			ctxErr = nil
		}
	}
	st.ckptStop()
	<-st.ckptDone
	return errors.Join(ctxErr, st.release())
}

// checkpointInterval is how often the write-ahead log is copied into the
// database file.
const checkpointInterval = 500 * time.Millisecond

// checkpointLoop copies the write-ahead log into the database file on a
// reader connection, so that the writer only ever appends to the log and
// the copy (and its fsync) runs beside it. A passive checkpoint never
// blocks the writer or the readers.
func (st *store) checkpointLoop() {
	defer close(st.ckptDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-st.ckptCtx.Done():
			return
		}
		if _, err := st.rdb.ExecContext(st.ckptCtx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil && st.ckptCtx.Err() == nil {
			st.logger.Warn("checkpoint stream database failed", "file", st.file, "error", err)
		}
	}
}

// lastOffset returns the offset of the last message ever written.
func (st *store) lastOffset(ctx context.Context) (int64, error) {
	var n int64
	if err := st.lastSeq.QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, fmt.Errorf("read last offset of stream database %q: %w", st.file, err)
	}
	return n, nil
}

// offsetAt returns the offset just before the first message published at
// or after t.
func (st *store) offsetAt(ctx context.Context, t time.Time) (int64, error) {
	var n sql.NullInt64
	if err := st.fromTime.QueryRowContext(ctx, t.UnixNano()).Scan(&n); err != nil {
		return 0, fmt.Errorf("find offset at %s in stream database %q: %w", t.Format(time.RFC3339Nano), st.file, err)
	}
	if !n.Valid {
		return st.lastOffset(ctx)
	}
	return n.Int64 - 1, nil
}

// readAfter returns up to limit messages of topic after offset, in order.
func (st *store) readAfter(ctx context.Context, topic string, after int64, limit int) ([]stored, error) {
	rows, err := st.read.QueryContext(ctx, topic, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
	}
	defer rows.Close()
	var out []stored
	for rows.Next() {
		var m stored
		var md []byte
		if err := rows.Scan(&m.offset, &m.uuid, &md, &m.payload); err != nil {
			return nil, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
		}
		if len(md) > 0 {
			if m.metadata, err = decodeMetadata(md); err != nil {
				return nil, fmt.Errorf("decode metadata of message at offset %d on topic %q: %w", m.offset, topic, err)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
	}
	return out, nil
}

// committed returns a consumer group's last acked offset on topic.
func (st *store) committed(ctx context.Context, group, topic string) (int64, bool, error) {
	var off int64
	err := st.loadOff.QueryRowContext(ctx, group, topic).Scan(&off)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("load offset of group %q on topic %q: %w", group, topic, err)
	}
	return off, true, nil
}

// leaseTTL is how long a consumer group's lease lasts without renewal: how
// long a group waits for a process that died while reading.
const leaseTTL = 15 * time.Second

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%x", os.Getpid(), b)
}

// writeLease takes, renews or drops a lease inside the writer's transaction.
func (st *store) writeLease(ctx context.Context, l *leaseReq) error {
	if !l.hold {
		if _, err := st.dropLease.ExecContext(ctx, l.key.group, l.key.topic, st.owner); err != nil {
			return fmt.Errorf("release lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
		}
		return nil
	}
	now := time.Now()
	res, err := st.takeLease.ExecContext(ctx, l.key.group, l.key.topic, st.owner, now.Add(leaseTTL).UnixNano(), now.UnixNano())
	if err != nil {
		return fmt.Errorf("take lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("take lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
	}
	l.got = n > 0
	return nil
}

// lease takes or renews (hold) or releases a group's lease, and reports
// whether this store holds it.
func (st *store) lease(ctx context.Context, key offsetKey, hold bool) (bool, error) {
	l := &leaseReq{key: key, hold: hold}
	errc := make(chan error, 1)
	if err := st.enqueue(ctx, &op{lease: l, done: func(err error) { errc <- err }}); err != nil {
		return false, err
	}
	select {
	case err := <-errc:
		return l.got, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
