package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core/statedb"
)

// ErrClosed is returned by operations on a closed stream, publisher or
// subscriber.
var ErrClosed = errors.New("embedded stream closed")

// schemaVersion is stored in PRAGMA user_version. Version 1 kept one row
// per message in a messages table; version 2 keeps one row per batch (see
// batch.go); version 3 drops version 2's index on published_at, since
// publish times follow the offsets (see insertBatches). Opening an older
// file migrates it (see migrate.go).
const schemaVersion = 3

// schema creates the tables of schemaVersion, in one transaction.
var schema = []string{
	// One row per topic and transaction: the messages with offsets
	// first_offset to last_offset, all published at published_at. A
	// reader finds the first batch of a topic it has not read with one
	// seek of batches_topic_last, since a topic's batches never overlap.
	// published_at never decreases as first_offset grows, so pruning and
	// offsetAt find times along the primary key, and no index on
	// published_at costs every transaction a page.
	`CREATE TABLE IF NOT EXISTS batches (
		first_offset INTEGER PRIMARY KEY,
		last_offset  INTEGER NOT NULL,
		topic        TEXT    NOT NULL,
		published_at INTEGER NOT NULL,
		messages     BLOB    NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS batches_topic_last ON batches (topic, last_offset)`,
	// A floor under the end of the log, for when pruning deletes the
	// last batch: the log ends at the last batch (the one with the
	// highest first_offset), or at log_end if that is further. The
	// writer does not update it, saving a page per transaction; pruning
	// and migrating do. See endSQL.
	`CREATE TABLE IF NOT EXISTS log_end (
		id                INTEGER PRIMARY KEY CHECK (id = 1),
		last_offset       INTEGER NOT NULL,
		last_published_at INTEGER NOT NULL
	)`,
	`INSERT OR IGNORE INTO log_end (id, last_offset, last_published_at) VALUES (1, 0, 0)`,
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
}

// endSQL reads the end of the log: the last offset handed out (it never
// goes back, even when pruning deletes every batch) and the last publish
// time (publish times never go back either, across processes too).
// Batches written after a migration start after every migrated offset, so
// the batch with the highest first offset also has the highest last
// offset, or log_end is further.
const endSQL = `SELECT
	MAX(last_offset, COALESCE((SELECT last_offset FROM batches ORDER BY first_offset DESC LIMIT 1), 0)),
	MAX(last_published_at, COALESCE((SELECT published_at FROM batches ORDER BY first_offset DESC LIMIT 1), 0))
	FROM log_end WHERE id = 1`

// newerSchemaError reports a file written by a newer version of tributary.
type newerSchemaError struct{ version int }

func (e *newerSchemaError) Error() string {
	return fmt.Sprintf("schema version %d is newer than this build reads (%d); upgrade tributary to the version that wrote it, or set path to another file", e.version, schemaVersion)
}

// migrateError reports a file of an older schema version that could not
// be migrated; the file is left as it was.
type migrateError struct {
	version int
	err     error
}

func (e *migrateError) Error() string {
	return fmt.Sprintf("migrate schema version %d to %d: %v; the file is left as it was: open it with the tributary version that wrote it, or move it aside to start an empty stream", e.version, schemaVersion, e.err)
}

func (e *migrateError) Unwrap() error { return e.err }

// setup creates the schema in a new file, migrates a version 1 file, and
// checks a current one without writing to it.
func (st *store) setup(ctx context.Context) error {
	version, err := st.userVersion(ctx)
	if err != nil {
		return err
	}
	if version > schemaVersion {
		return &newerSchemaError{version}
	}
	if version < schemaVersion {
		if version == 0 {
			// The page size only applies to a new file, and before WAL
			// is on. Every transaction writes each page it touches
			// whole, to the log and again to the file: its batch, an
			// index leaf, a checkpoint. With 4 KiB pages a transaction
			// of 20 events writes 33 KB where 16 KiB pages wrote 84 KB,
			// and cached pages fit modernc.org/libc's slots (see
			// openOptions). Files made with 16 KiB pages keep them.
			if _, err := st.wconn.ExecContext(ctx, "PRAGMA page_size = 4096"); err != nil {
				return fmt.Errorf("set page size: %w", err)
			}
		}
		if _, err := st.wconn.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
			return fmt.Errorf("set journal mode: %w", err)
		}
		if err := st.upgrade(ctx); err != nil {
			return err
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

func (st *store) userVersion(ctx context.Context) (int, error) {
	var version int
	if err := st.wconn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, nil
}

// upgrade creates or migrates the schema in one transaction. It reads the
// version again once it holds the write lock, since another process may
// have upgraded the file in the meantime.
func (st *store) upgrade(ctx context.Context) (err error) {
	if _, err := st.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = st.wconn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	version, err := st.userVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case version == schemaVersion:
	case version > schemaVersion:
		return &newerSchemaError{version}
	default:
		for _, stmt := range schema {
			if _, err := st.wconn.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if version == 1 {
			if err := st.migrateV1(ctx); err != nil {
				return &migrateError{version, err}
			}
		}
		if version >= 1 {
			if err := st.migrateV2(ctx); err != nil {
				return &migrateError{version, err}
			}
		}
		if _, err := st.wconn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
	}
	if _, err := st.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("create schema: %w", err)
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
	// readBatch is how many messages a subscription reads per query, at
	// least: it reads whole batches.
	readBatch = 1024
	// readRows bounds the batches a subscription reads per query.
	readRows = 64
	// pollInterval is how often an idle subscription looks for messages
	// written by another process.
	pollInterval = time.Second
	// pruneRows and pruneBytes bound the batches deleted per pruning
	// transaction, so that pruning a large backlog never stalls
	// publishers for long.
	pruneRows  = 1000
	pruneBytes = 32 << 20
)

// store is an open stream database: a single writer goroutine that group
// commits every queued operation, and a pool of readers.
type store struct {
	file      string
	logger    *slog.Logger
	retention time.Duration
	pruneIv   time.Duration
	compress  bool // write batches S2-compressed

	wdb   *sql.DB
	wconn *sql.Conn
	// begin, commitTx and rollback start and end the writer's
	// transactions, prepared once rather than for every transaction.
	begin     *sql.Stmt
	commitTx  *sql.Stmt
	rollback  *sql.Stmt
	insert    *sql.Stmt // one batch
	readEnd   *sql.Stmt
	writeEnd  *sql.Stmt
	commit    *sql.Stmt
	saveCP    *sql.Stmt
	takeLease *sql.Stmt
	dropLease *sql.Stmt
	pruneSel  *sql.Stmt
	pruneDel  *sql.Stmt
	owner     string // this store's lease owner id

	rdb      *sql.DB
	read     *sql.Stmt
	loadCP   *sql.Stmt
	loadOff  *sql.Stmt
	lastSeq  *sql.Stmt
	fromTime *sql.Stmt

	queue   chan *op
	mu      sync.Mutex // guards closed, gen and senders.Add
	closed  bool
	gen     uint64 // stamped on every op enqueued (see ordering.go)
	senders sync.WaitGroup
	abort   atomic.Bool
	aborted atomic.Int64 // ops failed because the flush was cut short
	done    chan struct{}

	ckptStop context.CancelFunc
	ckptCtx  context.Context
	ckptDone chan struct{}

	notifyMu sync.Mutex
	notifyCh chan struct{}
	wbuf     []byte      // the writer's batch buffer
	zbuf     []byte      // the writer's compressed batch buffer
	wtopics  []topicRows // the writer's rows by topic
	failures failures    // the writer's record of failed publishes
	// transactions counts the writer's transactions (each one sync).
	transactions atomic.Int64
	// window is how long, in nanoseconds, a checkpoint or an offset
	// commit waits for a publish to share its transaction: groupWindow,
	// or longer in tests that cannot count on a prompt scheduler.
	window atomic.Int64

	groupsMu sync.Mutex
	groups   map[offsetKey]*group
	subsMu   sync.Mutex
	subs     map[*Subscriber]struct{}
}

type offsetKey struct{ group, topic string }

// openOptions says how the writer (writer true) and the readers open the
// stream database.
func openOptions(mode SyncMode, writer bool) statedb.Options {
	// setup turns WAL on, once a new file's page size is chosen.
	o := statedb.Options{DeferWAL: true}
	if mode == SyncNormal {
		o.Sync = statedb.SyncNormal
	}
	if writer {
		// The writer's cache holds a whole transaction of the usual
		// sizes, so that no page spills to the log before the commit:
		// 2 MiB, two rows of a batch (maxBatchBlob) once compressed, or
		// a hundred of the webhook sidecar's 20-event transactions. Each
		// cached 4 KiB page (plus SQLite's header) takes an 8 KiB slot
		// of modernc.org/libc's allocator, outside the Go heap, and the
		// cache fills within seconds of steady writing and stays full:
		// at 4 MiB it held 9.6-9.9 MB (TestWriterMemoryBounded), 5.8 MB
		// at 2 MiB, with no change in CPU per event measurable on this
		// machine (BenchmarkPublishSmallTx, BenchmarkPublish1KB). A
		// larger transaction still commits whole; its pages past the
		// cache are written to the log before the commit. In a file
		// made with 16 KiB pages (before 4 KiB became the default) each
		// cached page takes a 64 KiB region of its own: the cache costs
		// up to four times its size there (16 MiB of cache held 70 MB).
		o.CacheKiB = 2048
		o.Pragmas = []string{
			// Checkpoints run in the background (see checkpointLoop); the
			// writer checkpoints only as a safety net when the log grows
			// past 65536 pages: 256 MiB of 4 KiB pages (1 GiB in a file
			// made with 16 KiB pages).
			"wal_autocheckpoint(65536)",
			// Statement journals, when any, cost no write calls in memory.
			"temp_store(MEMORY)",
		}
		o.TxLock = "immediate"
	}
	return o
}

// openStore opens (creating when needed) the database at file and starts
// the writer. On error everything opened so far is closed again.
func openStore(ctx context.Context, file string, cfg Config, logger *slog.Logger) (_ *store, err error) {
	st := &store{
		file:      file,
		logger:    logger,
		retention: cfg.Retention,
		pruneIv:   cfg.pruneInterval(),
		compress:  cfg.Compression != CompressionNone,
		queue:     make(chan *op, queueSize),
		done:      make(chan struct{}),
		notifyCh:  make(chan struct{}),
		groups:    map[offsetKey]*group{},
		owner:     newOwner(),
		ckptDone:  make(chan struct{}),
		subs:      map[*Subscriber]struct{}{},
	}
	st.window.Store(int64(groupWindow))
	st.ckptCtx, st.ckptStop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			st.ckptStop()
			_ = st.release() // the open error says more
		}
	}()
	st.wdb, err = statedb.Open(file, openOptions(cfg.Sync, true))
	if err != nil {
		return nil, fmt.Errorf("open stream database %q: %w", file, err)
	}
	st.wdb.SetMaxOpenConns(1)
	st.wconn, err = st.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open stream database %q (path must name a SQLite file, or a new file in a writable directory): %w", file, err)
	}
	if err = st.setupRetrying(ctx); err != nil {
		var ne *newerSchemaError
		var me *migrateError
		if errors.As(err, &ne) || errors.As(err, &me) {
			return nil, fmt.Errorf("open stream database %q: %w", file, err)
		}
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
	st.begin = prep(st.wconn, "BEGIN IMMEDIATE")
	st.commitTx = prep(st.wconn, "COMMIT")
	st.rollback = prep(st.wconn, "ROLLBACK")
	st.insert = prep(st.wconn, `INSERT INTO batches (first_offset, last_offset, topic, published_at, messages) VALUES (?, ?, ?, ?, ?)`)
	st.readEnd = prep(st.wconn, endSQL)
	st.writeEnd = prep(st.wconn, `UPDATE log_end SET last_offset = ?, last_published_at = ? WHERE id = 1`)
	st.commit = prep(st.wconn, `INSERT INTO consumer_offsets ("group", topic, "offset") VALUES (?, ?, ?)
		ON CONFLICT ("group", topic) DO UPDATE SET "offset" = excluded."offset"`)
	st.saveCP = prep(st.wconn, `INSERT INTO checkpoints (connector, checkpoint) VALUES (?, ?)
		ON CONFLICT (connector) DO UPDATE SET checkpoint = excluded.checkpoint`)
	st.takeLease = prep(st.wconn, `INSERT INTO consumer_leases ("group", topic, owner, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT ("group", topic) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE consumer_leases.owner = excluded.owner OR consumer_leases.expires_at < ?`)
	st.dropLease = prep(st.wconn, `DELETE FROM consumer_leases WHERE "group" = ? AND topic = ? AND owner = ?`)
	// The batches before the first one published at or after the cutoff:
	// the scan stops at that one, which is the first when nothing is due.
	st.pruneSel = prep(st.wconn, `SELECT first_offset, length(messages) FROM batches
		WHERE first_offset < COALESCE((SELECT first_offset FROM batches WHERE published_at >= ?1 ORDER BY first_offset LIMIT 1), 9223372036854775807)
		ORDER BY first_offset LIMIT ?2`)
	st.pruneDel = prep(st.wconn, `DELETE FROM batches WHERE first_offset = ?`)
	if err != nil {
		return nil, err
	}

	st.rdb, err = statedb.Open(file, openOptions(cfg.Sync, false))
	if err != nil {
		return nil, fmt.Errorf("open stream database %q for reading: %w", file, err)
	}
	st.rdb.SetMaxOpenConns(8)
	st.rdb.SetMaxIdleConns(8)
	st.read = prep(st.rdb, `SELECT first_offset, messages FROM batches
		WHERE topic = ? AND last_offset > ? ORDER BY last_offset LIMIT ?`)
	st.loadCP = prep(st.rdb, `SELECT checkpoint FROM checkpoints WHERE connector = ?`)
	st.loadOff = prep(st.rdb, `SELECT "offset" FROM consumer_offsets WHERE "group" = ? AND topic = ?`)
	st.lastSeq = prep(st.rdb, endSQL)
	st.fromTime = prep(st.rdb, `SELECT first_offset, published_at FROM batches
		WHERE first_offset >= ? ORDER BY first_offset LIMIT 1`)
	if err != nil {
		return nil, err
	}
	go st.run()
	go st.checkpointLoop()
	return st, nil
}

// release closes the statements and databases, ignoring what was never
// opened.
func (st *store) release() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.begin, st.commitTx, st.rollback, st.insert, st.readEnd, st.writeEnd, st.commit, st.saveCP, st.takeLease, st.dropLease, st.pruneSel, st.pruneDel, st.read, st.loadCP, st.loadOff, st.lastSeq, st.fromTime} {
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

// isClosed reports whether shutdown has begun.
func (st *store) isClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closed
}

// lastOffset returns the offset of the last message ever written.
func (st *store) lastOffset(ctx context.Context) (int64, error) {
	var n, at int64
	if err := st.lastSeq.QueryRowContext(ctx).Scan(&n, &at); err != nil {
		return 0, fmt.Errorf("read last offset of stream database %q: %w", st.file, err)
	}
	return n, nil
}

// offsetAt returns the offset just before the first message published at
// or after t. Publish times never decrease along the offsets, so it
// bisects the batches by first offset: a few seeks of the primary key
// however long the log.
func (st *store) offsetAt(ctx context.Context, t time.Time) (int64, error) {
	at := t.UnixNano()
	// batchFrom returns the first batch at or after offset from: its
	// first offset and publish time, or ok false when there is none.
	batchFrom := func(from int64) (first, published int64, ok bool, err error) {
		err = st.fromTime.QueryRowContext(ctx, from).Scan(&first, &published)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, false, nil
		}
		if err != nil {
			return 0, 0, false, fmt.Errorf("find offset at %s in stream database %q: %w", t.Format(time.RFC3339Nano), st.file, err)
		}
		return first, published, true, nil
	}
	first, published, ok, err := batchFrom(math.MinInt64)
	if err != nil {
		return 0, err
	}
	if !ok {
		return st.lastOffset(ctx)
	}
	if published >= at {
		return first - 1, nil
	}
	// Invariant: the batch at lo was published before t; the answer, if
	// any, is a batch with a first offset in (lo, hi].
	last, err := st.lastOffset(ctx)
	if err != nil {
		return 0, err
	}
	lo, hi := first, last
	found := int64(-1)
	for lo < hi {
		mid := lo + (hi-lo)/2 + 1
		first, published, ok, err := batchFrom(mid)
		if err != nil {
			return 0, err
		}
		switch {
		case !ok:
			hi = mid - 1
		case published >= at:
			found, hi = first, mid-1
		default:
			lo = first
		}
	}
	if found < 0 {
		return last, nil
	}
	return found - 1, nil
}

// readAfter returns the messages of topic after offset, in order: those of
// whole batches, at least limit messages when there are as many. more is
// true when there may be more to read at once.
func (st *store) readAfter(ctx context.Context, topic string, after int64, limit int) (out []stored, more bool, err error) {
	rows, err := st.read.QueryContext(ctx, topic, after, readRows)
	if err != nil {
		return nil, false, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
		var first int64
		var blob []byte
		if err := rows.Scan(&first, &blob); err != nil {
			return nil, false, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
		}
		if out, err = decodeBatch(out, blob, first, after); err != nil {
			return nil, false, fmt.Errorf("decode batch at offset %d of topic %q in stream database %q: %w", first, topic, st.file, err)
		}
		if len(out) >= limit {
			return out, true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("read topic %q after offset %d: %w", topic, after, err)
	}
	return out, n == readRows, nil
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
