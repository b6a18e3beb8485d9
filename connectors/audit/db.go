package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/tributary/tributary/core/statedb"
)

// DB is an open audit log: its tables in SQLite or PostgreSQL. Its
// methods and the functions taking it are safe for concurrent use.
type DB struct {
	db      *sql.DB
	pg      bool
	events  string // table names, checked by Config.Validate
	replays string
	where   string // the file or "postgres", for errors

	// A SQLite log indexes its event ids in runs (see ids.go): catalog
	// lists them, each in a table named idsPrefix and its number. legacy
	// is set for a log written before them (keyed by id), which Open
	// reads as it is and the sink rewrites.
	catalog   string
	idsPrefix string
	legacy    bool
	// subjects is the table indexing a SQLite log's subjects (see
	// subjects.go); bySubjects is set when the log has it, so that
	// searches by subject read it.
	subjects   string
	bySubjects bool
	reader     *idReader
	log        *slog.Logger // warnings of the goroutines

	// writeMu makes the writers of a SQLite log (the committer, merges,
	// pruning, replays) take turns in the process, rather than in
	// SQLite's busy loop. It guards idx and what follows it.
	writeMu     sync.Mutex
	wconn       *sql.Conn // a SQLite sink's writes, see w
	idx         *idIndex
	inserts     map[int]*sql.Stmt // by rows per statement
	lastSeq     *sql.Stmt         // reads the highest seq
	pending     map[string]int64  // the ids of the commit being made
	pendingSubj []subjectEntry    // and the subjects of its events
	rowsBuf     []any
	stmtMu      sync.Mutex
	insertTexts map[int]string // the INSERT statements, by rows

	// A SQLite log the sink writes has three goroutines, stopped by
	// Close: one commits the Writes queued in writes (see commit.go), one
	// checkpoints and one merges id runs. stop is nil when they do not
	// run (a DB from Open).
	stop       context.CancelFunc
	background sync.WaitGroup
	writes     chan *writeReq
	mergeWake  chan struct{}
	closing    chan struct{}
	closeOnce  sync.Once
}

// Open opens the audit log cfg configures, which must exist (the audit
// sink creates it when it first opens), for tools that read it or record
// replays. stateDir is the sink's state directory, where a relative
// SQLite path lies. The caller closes the DB.
func Open(ctx context.Context, cfg Config, stateDir string) (*DB, error) {
	if cfg.Driver == DriverSQLite {
		path := cfg.SQLitePath(stateDir)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no audit log at %s: the audit sink creates it when the sidecar first runs it", path)
		}
	}
	d, err := connect(ctx, cfg, stateDir, false)
	if err != nil {
		return nil, err
	}
	var n int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM "+d.replays+" WHERE 1 = 0").Scan(&n); err != nil {
		_ = d.db.Close()
		return nil, fmt.Errorf("audit log %s has no table %s (has the audit sink run with table_prefix %q?): %w", d.where, d.replays, cfg.TablePrefix, err)
	}
	if !d.pg {
		if d.legacy, err = d.legacyLayout(ctx, d.db); err == nil && !d.legacy {
			d.bySubjects, err = d.hasSubjectsTable(ctx, d.db)
		}
		if err != nil {
			_ = d.db.Close()
			return nil, err
		}
	}
	return d, nil
}

// create opens the audit log cfg configures, creating its file, tables
// and indexes when missing and rewriting a log of the layout before the
// id runs. A SQLite log starts its goroutines, which log warnings to log;
// runSize is how many ids make a run (0 for defaultRunSize).
func create(ctx context.Context, cfg Config, stateDir string, log *slog.Logger, runSize int) (*DB, error) {
	d, err := connect(ctx, cfg, stateDir, true)
	if err != nil {
		return nil, err
	}
	if err := d.createTables(ctx); err != nil {
		_ = d.db.Close()
		return nil, fmt.Errorf("create audit tables in %s: %w", d.where, err)
	}
	if d.pg {
		return d, nil
	}
	if runSize <= 0 {
		runSize = defaultRunSize
	}
	if log != nil {
		d.log = log
	}
	if d.wconn, err = d.db.Conn(ctx); err == nil {
		if d.idx, err = d.loadIndex(ctx, runSize); err == nil {
			err = d.prepareInserts(ctx)
		}
	}
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	bctx, stop := context.WithCancel(context.Background())
	d.stop, d.writes, d.closing = stop, make(chan *writeReq), make(chan struct{})
	d.mergeWake = make(chan struct{}, 1)
	d.background.Go(func() { d.commits(bctx) })
	d.background.Go(func() { d.checkpoints(bctx) })
	d.background.Go(func() { d.merges(bctx) })
	return d, nil
}

// createTables creates the tables and indexes that are missing, in one
// transaction, so that a reader finds all of them or none, after moving
// the events of a legacy SQLite log to the new layout.
func (d *DB) createTables(ctx context.Context) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	migrated, hadSubjects := false, false
	if !d.pg {
		if migrated, err = d.legacyLayout(ctx, tx); err != nil {
			return err
		}
		if migrated {
			if err := d.migrate(ctx, tx); err != nil {
				return err
			}
		}
		if hadSubjects, err = d.hasSubjectsTable(ctx, tx); err != nil {
			return err
		}
	}
	for _, stmt := range d.schema() {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if err := d.addPosition(ctx, tx); err != nil {
		return err
	}
	if migrated {
		if err := d.firstRuns(ctx, tx); err != nil {
			return err
		}
	}
	if !d.pg && !hadSubjects {
		if err := d.fillSubjects(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	d.bySubjects = !d.pg
	return nil
}

// addPosition adds the position column to an events table created
// before the log kept where each event lay in the stream; its events
// keep a NULL position.
func (d *DB) addPosition(ctx context.Context, tx *sql.Tx) error {
	q := `SELECT count(*) FROM pragma_table_info('` + d.events + `') WHERE name = 'position'`
	if d.pg {
		q = `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '` + d.events + `' AND column_name = 'position'`
	}
	var n int
	if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return fmt.Errorf("look for the position column of %s: %w", d.events, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE `+d.events+` ADD COLUMN position TEXT`); err != nil {
		return fmt.Errorf("add the position column to %s: %w", d.events, err)
	}
	return nil
}

// checkpointEvery is how often the write-ahead log of a SQLite log is
// copied into its file.
const checkpointEvery = 500 * time.Millisecond

// checkpoints copies the write-ahead log of a SQLite log into its file
// every checkpointEvery, beside the writer rather than in the commit
// that fills the log, until ctx is done. A failed checkpoint is left to
// the next one (or to the writer's own, past wal_autocheckpoint).
func (d *DB) checkpoints(ctx context.Context) {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _ = d.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
	}
}

// connect opens the database and checks that it answers; create makes
// the directory of a SQLite file.
func connect(ctx context.Context, cfg Config, stateDir string, create bool) (*DB, error) {
	d := &DB{
		pg:          cfg.Driver == DriverPostgres,
		events:      cfg.TablePrefix + "events",
		replays:     cfg.TablePrefix + "replays",
		catalog:     cfg.TablePrefix + "id_runs",
		idsPrefix:   cfg.TablePrefix + "ids_",
		subjects:    cfg.TablePrefix + "subjects",
		reader:      &idReader{tail: map[string]int64{}},
		inserts:     map[int]*sql.Stmt{},
		pending:     map[string]int64{},
		insertTexts: map[int]string{},
		log:         slog.New(slog.DiscardHandler),
	}
	var err error
	if d.pg {
		d.where = "postgres"
		d.db, err = sql.Open("pgx", cfg.DSN)
		if err != nil {
			// pgx quotes the connection string with its password hidden.
			return nil, fmt.Errorf("audit log dsn: %w", err)
		}
		d.db.SetMaxOpenConns(cfg.MaxConns)
		d.db.SetMaxIdleConns(cfg.MaxConns)
	} else {
		path := cfg.SQLitePath(stateDir)
		d.where = path
		if create {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, fmt.Errorf("create the directory of audit log %s: %w", path, err)
			}
		}
		sync := statedb.SyncFull
		if cfg.Sync == SyncNormal {
			sync = statedb.SyncNormal
		}
		d.db, err = statedb.Open(path, statedb.Options{
			Sync: sync,
			// The pages written to (the ends of the table and its
			// indexes) stay in memory, and a group commit's pages until
			// it commits. Not more: SQLite walks the cache's hash table
			// at the end of each write transaction, which cost 1.5 µs an
			// event at 64 MiB; and each page of 16 KiB takes a 64 KiB
			// region of modernc.org/libc, so 4 MiB hold 16 MB.
			CacheKiB: 4096,
			Pragmas: []string{
				// checkpoints runs them in the background; the writer
				// checkpoints only when the log passes 16384 pages
				// (256 MiB of 16 KiB pages).
				"wal_autocheckpoint(16384)",
				"temp_store(MEMORY)",
			},
			TxLock: "immediate",
			// A new file's page size is set first (see pageSize).
			DeferWAL: create,
		})
		if err != nil {
			return nil, fmt.Errorf("open audit log %s: %w", path, err)
		}
		if create {
			if err := d.setupFile(ctx); err != nil {
				_ = d.db.Close()
				return nil, err
			}
		}
	}
	if err := d.db.PingContext(ctx); err != nil {
		_ = d.db.Close()
		return nil, fmt.Errorf("connect to audit log %s: %w", d.where, err)
	}
	return d, nil
}

// pageSize is the page size of a new SQLite log. A commit writes each
// page it changed to the write-ahead log in two calls (the frame's
// header, then the page) and a checkpoint copies it: pages of 16 KiB
// rather than SQLite's 4 KiB take the committer about 1.2 µs less an
// event of 1 KB (12-12.5 against 13.2-13.4 µs, with its commits of 256
// events and the run writes, measured side by side). A log created with
// another page size keeps it.
const pageSize = 16384

// setupFile sets the page size of a new SQLite log, which SQLite takes
// only before the file has a page, and turns its write-ahead log on.
func (d *DB) setupFile(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to audit log %s: %w", d.where, err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA page_size = "+strconv.Itoa(pageSize)); err != nil {
		return fmt.Errorf("set the page size of audit log %s: %w", d.where, err)
	}
	var mode string
	if err := c.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("turn on the write-ahead log of audit log %s: %w", d.where, err)
	}
	if mode != "wal" {
		return fmt.Errorf("audit log %s: journal mode %q, not wal: is the file on a file system without shared memory?", d.where, mode)
	}
	return nil
}

// writer is where the writes of a SQLite log go.
type writer interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// w returns where the writes go: in a sink's SQLite log, one connection,
// so that no write of another connection (a merge, pruning, a replay's
// record) makes the committer's drop its page cache, as SQLite does when
// the file changed under it; the pool otherwise.
func (d *DB) w() writer {
	if d.wconn != nil {
		return d.wconn
	}
	return d.db
}

// SQL returns the database, for queries of the log beyond Search.
func (d *DB) SQL() *sql.DB { return d.db }

// Close stops the DB's goroutines, fails the Writes waiting for a commit
// and closes the database. It is safe to call twice.
func (d *DB) Close() error {
	var err error
	d.closeOnce.Do(func() {
		if d.stop != nil {
			close(d.closing)
			d.stop()
			d.background.Wait()
		}
		d.writeMu.Lock()
		for n, st := range d.inserts {
			_ = st.Close()
			delete(d.inserts, n)
		}
		if d.lastSeq != nil {
			_ = d.lastSeq.Close()
		}
		if d.idx != nil {
			for n, st := range d.idx.probes {
				_ = st.Close()
				delete(d.idx.probes, n)
			}
		}
		if d.wconn != nil {
			_ = d.wconn.Close()
		}
		d.writeMu.Unlock()
		err = d.db.Close()
	})
	return err
}

// schema returns the statements creating the tables and indexes. A
// SQLite log keys its events by seq and indexes their ids in runs (see
// ids.go) and their subjects in a table of their own (see subjects.go);
// PostgreSQL keys them by id and indexes their subjects.
func (d *DB) schema() []string {
	ts, first, key := "TEXT", "", "seq INTEGER PRIMARY KEY,\n\tid TEXT NOT NULL"
	if d.pg {
		// PostgreSQL sorts NULL last, SQLite first: events with no time
		// come first on both.
		ts, first, key = "TIMESTAMPTZ", " NULLS FIRST", "id TEXT PRIMARY KEY"
	}
	e, r := d.events, d.replays
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS ` + e + ` (
	` + key + `,
	type TEXT NOT NULL,
	source TEXT NOT NULL,
	subject TEXT,
	time ` + ts + `,
	partition_key TEXT,
	data TEXT,
	data_base64 TEXT,
	datacontenttype TEXT,
	dataschema TEXT,
	traceparent TEXT,
	position TEXT,
	logged_at ` + ts + ` NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS ` + e + `_time ON ` + e + ` (time` + first + `)`,
		`CREATE INDEX IF NOT EXISTS ` + e + `_type_time ON ` + e + ` (type, time` + first + `)`,
		`CREATE TABLE IF NOT EXISTS ` + r + ` (
	id TEXT PRIMARY KEY,
	at ` + ts + ` NOT NULL,
	who TEXT NOT NULL,
	sink TEXT NOT NULL,
	filter TEXT NOT NULL,
	count BIGINT NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS ` + r + `_at ON ` + r + ` (at)`,
	}
	if d.pg {
		// SQLite's log prunes in seq order (see prune).
		stmts = append(stmts,
			`CREATE INDEX IF NOT EXISTS `+e+`_subject_time ON `+e+` (subject, time`+first+`)`,
			`CREATE INDEX IF NOT EXISTS `+e+`_logged_at ON `+e+` (logged_at)`)
	} else {
		stmts = append(stmts, d.subjectsSchema())
		stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+d.catalog+` (
	run INTEGER PRIMARY KEY,
	level INTEGER NOT NULL,
	upto INTEGER NOT NULL,
	count INTEGER NOT NULL,
	bloom BLOB NOT NULL
)`)
	}
	return stmts
}

// sqliteTime is how a SQLite log writes times: UTC, fixed width, so that
// text order is time order.
const sqliteTime = "2006-01-02T15:04:05.000000000Z"

// timeArg returns t as the log's time columns take it; nil for the zero
// time.
func (d *DB) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if d.pg {
		return t
	}
	return t.UTC().Format(sqliteTime)
}

// nullTime reads a time column.
type nullTime struct{ t time.Time }

// Scan reads a TIMESTAMPTZ (PostgreSQL) or text (SQLite) value.
func (n *nullTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		n.t = time.Time{}
	case time.Time:
		n.t = v.UTC()
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("time %q: %w", v, err)
		}
		n.t = t
	case []byte:
		return n.Scan(string(v))
	default:
		return fmt.Errorf("time of type %T", v)
	}
	return nil
}

// param writes the placeholder of the i-th (from 1) argument to b.
func (d *DB) param(b *strings.Builder, i int) {
	if d.pg {
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(i))
		return
	}
	b.WriteByte('?')
}
