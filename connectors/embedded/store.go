package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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
