// Package sqlsink registers the "sql" sink: it writes events as rows of a
// table in PostgreSQL, MySQL or MariaDB, SQLite or SQL Server, for the
// legacy systems that read a table. Each column's value is an expression
// over the event. In insert mode the table gets one row per event, once
// per event id; in upsert mode it holds the latest row per key, and an
// older event never overwrites a newer one. A Write is one transaction in
// which a bad row is refused alone. See README.md.
package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "github.com/microsoft/go-mssqldb" // registers the "sqlserver" database/sql driver

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/statedb"
)

// Type is the sink type ID.
const Type = "sql"

func init() {
	core.RegisterSink(Spec())
}

// Spec returns the sink's registration, for registries built by tests.
func Spec() core.SinkSpec {
	return core.SinkSpec{
		Type:    Type,
		Summary: "Writes events as table rows in PostgreSQL, MySQL/MariaDB, SQLite or SQL Server: inserted once per event id, or upserted per key where an older event never overwrites a newer one, or deleted; one transaction per batch.",
		Config:  Config{},
		New:     func() core.Sink { return New() },
	}
}

// Sink is the sql sink. Configure it once, then Open, Write (concurrently)
// and Close it, as core.Sink says.
type Sink struct {
	name    string
	cfg     Config
	dialect dialect
	table   table
	// progs are the expressions of table.cols; the id column's is nil.
	progs []*rules.EventProgram
	del   *rules.EventProgram
	envs  sync.Pool
	// stmt is PostgreSQL's write statement, the same for any number of
	// rows.
	stmt string
	// copier is PostgreSQL's COPY path (see copy.go).
	copier *copier
	// paths reads the columns whose expressions are plain paths into
	// the data (see extract.go); nil when the data is decoded anyway.
	paths *dataPaths
	// pathCol marks the columns paths reads.
	pathCol []bool

	mu     sync.Mutex
	db     *sql.DB
	commit *committers
}

// New returns an unconfigured sink.
func New() *Sink { return &Sink{} }

// Configure decodes and validates the configuration and compiles the
// columns' expressions. It does no I/O.
func (s *Sink) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d := dialectOf(cfg.Driver)
	t := table{name: cfg.Table, id: -1, version: -1, upsert: cfg.Mode == ModeUpsert}
	var progs []*rules.EventProgram
	var exprs []string
	var errs []error
	if cfg.IDColumn != "" {
		t.id = 0
		t.cols = append(t.cols, column{name: cfg.IDColumn, typ: TypeText})
		progs = append(progs, nil)
		exprs = append(exprs, "")
	}
	for i, col := range cfg.Columns {
		exprs = append(exprs, col.Value)
		p, err := rules.CompileEvent(fmt.Sprintf("columns[%d].value", i), col.Value)
		if err != nil {
			errs = append(errs, err)
		}
		t.cols = append(t.cols, column{name: col.Name, typ: col.Type, sqlType: col.SQLType})
		progs = append(progs, p)
	}
	index := func(name string) int {
		for i, c := range t.cols {
			if c.name == name {
				return i
			}
		}
		return -1
	}
	if t.upsert {
		for _, k := range cfg.Key {
			t.key = append(t.key, index(k))
		}
		t.version = index(cfg.Version)
	} else {
		t.key = []int{t.id}
	}
	var del *rules.EventProgram
	if cfg.DeleteWhen != "" {
		p, err := rules.CompileEventCondition("delete_when", cfg.DeleteWhen)
		if err != nil {
			errs = append(errs, err)
		}
		del = p
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	s.name, s.cfg, s.dialect, s.table, s.progs, s.del = c.Name, cfg, d, t, progs, del
	if d.driver == DriverPostgres {
		s.stmt = d.write(&s.table, 0)
	}
	s.copier = newCopier(d, &s.table, s.stmt)
	s.paths, s.pathCol = compileDataPaths(exprs, cfg.DeleteWhen), make([]bool, len(t.cols))
	if s.paths != nil {
		for _, c := range s.paths.cols {
			s.pathCol[c] = true
		}
	}
	s.envs.New = func() any { return rules.NewEventEnv(nil, "") }
	return nil
}

// Open connects to the database, creates the table when create_table asks
// and it is missing, and checks that the table has every column.
// Rejected credentials, a missing table or column are fatal: retrying
// cannot fix them.
func (s *Sink) Open(ctx context.Context, env core.Env) error {
	if err := s.Close(ctx); err != nil {
		return err
	}
	db, err := s.connect(env)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(s.cfg.MaxConns)
	db.SetMaxIdleConns(s.cfg.MaxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fatalOpen(fmt.Errorf("sql sink %q: connect to %s: %w", s.name, s.cfg.Driver, err))
	}
	if s.cfg.CreateTable {
		if _, err := db.ExecContext(ctx, s.dialect.createTable(&s.table)); err != nil {
			db.Close()
			return fatalOpen(fmt.Errorf("sql sink %q: create table %s (create_table): %w", s.name, s.cfg.Table, err))
		}
	}
	if err := s.check(ctx, db); err != nil {
		db.Close()
		return err
	}
	c := s.startCommitters(db, s.cfg.MaxConns)
	s.mu.Lock()
	s.db, s.commit = db, c
	s.mu.Unlock()
	return nil
}

// connect opens the database handle, with no I/O. Its errors never quote
// the DSN.
func (s *Sink) connect(env core.Env) (*sql.DB, error) {
	switch s.cfg.Driver {
	case DriverSQLite:
		path := s.cfg.DSN
		if !filepath.IsAbs(path) {
			if env.StateDir == "" {
				return nil, core.Fatal(fmt.Errorf("sql sink %q: no state directory for the relative sqlite file %q: set the sidecar's state_dir or an absolute dsn", s.name, path))
			}
			path = filepath.Join(env.StateDir, path)
		}
		// Writes begin with the write lock, so that two of them never
		// meet in a lock upgrade, which fails at once instead of
		// waiting.
		return statedb.Open(path, statedb.Options{TxLock: "immediate"})
	case DriverMySQL:
		mc, err := mysql.ParseDSN(s.cfg.DSN)
		if err != nil {
			return nil, core.Fatal(core.FieldErrorf("dsn", "sql sink %q: is not a MySQL DSN such as user:pass@tcp(host:3306)/db", s.name))
		}
		// Times are written in UTC, whatever loc the DSN names, so that a
		// DATETIME column holds UTC (the README's zone rule).
		mc.Loc = time.UTC
		mc.ParseTime = true
		return sql.Open(s.dialect.sqlDriver, mc.FormatDSN())
	case DriverPostgres:
		pc, err := pgx.ParseConfig(s.cfg.DSN)
		if err != nil {
			return nil, core.Fatal(core.FieldErrorf("dsn", "sql sink %q: is not a PostgreSQL connection string such as postgres://user:pass@host:5432/db", s.name))
		}
		// Sessions in UTC: a timestamp column without a zone then holds
		// UTC, as in the other databases (the README's zone rule).
		pc.RuntimeParams["timezone"] = "UTC"
		return stdlib.OpenDB(*pc), nil
	}
	db, err := sql.Open(s.dialect.sqlDriver, s.cfg.DSN)
	if err != nil {
		return nil, core.Fatal(core.FieldErrorf("dsn", "sql sink %q: is not a %s connection string", s.name, s.cfg.Driver))
	}
	return db, nil
}

// check reads the table's columns and names the first column of the
// mapping the table lacks.
func (s *Sink) check(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, s.dialect.probe(&s.table))
	if err != nil {
		if missingTable(err) {
			return core.Fatal(fmt.Errorf("sql sink %q: table %s does not exist: create it, or set create_table: true to create it from columns: %w", s.name, s.cfg.Table, err))
		}
		return fatalOpen(fmt.Errorf("sql sink %q: read the columns of table %s: %w", s.name, s.cfg.Table, err))
	}
	have, err := rows.Columns()
	rows.Close()
	if err != nil {
		return fmt.Errorf("sql sink %q: read the columns of table %s: %w", s.name, s.cfg.Table, err)
	}
	return s.matchColumns(have)
}

// matchColumns checks that have, the table's columns, holds every column
// the sink writes.
func (s *Sink) matchColumns(have []string) error {
	for _, c := range s.table.cols {
		found, other := false, ""
		for _, h := range have {
			switch {
			case h == c.name:
				found = true
			case strings.EqualFold(h, c.name):
				if s.dialect.foldsCase {
					found = true
				} else {
					other = h
				}
			}
		}
		if found {
			continue
		}
		hint := "add the column to the table, or fix the name in columns"
		if c.name == s.cfg.IDColumn {
			hint = "add the column (the event id, text, with a unique key in insert mode), or set id_column to the column that holds it"
		}
		if other != "" {
			hint = fmt.Sprintf("the table has %q: names are matched exactly, as they are quoted", other)
		}
		return core.Fatal(fmt.Errorf("sql sink %q: table %s has no column %q (%s); it has %s", s.name, s.cfg.Table, c.name, hint, strings.Join(have, ", ")))
	}
	return nil
}

// Close stops taking Writes, waits within ctx for the transactions in
// flight to end, and closes the database. It is safe to call twice and
// after a failed Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	db, c := s.db, s.commit
	s.db, s.commit = nil, nil
	s.mu.Unlock()
	if db == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		c.stop()
		done <- db.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("sql sink %q: close: %w", s.name, err)
		}
		return nil
	case <-ctx.Done():
		// The transactions in flight end with their Writes' contexts;
		// the database closes after them.
		return fmt.Errorf("sql sink %q: close: writes still in flight: %w", s.name, ctx.Err())
	}
}

// WriteDefaults gives the runtime the sink's max_batch and concurrency
// when the configuration leaves them out (core.BatchingSink): a database
// writes a few large transactions faster, and at less CPU a row on both
// sides, than many small ones. Upsert mode takes smaller batches: the
// rows of a key in one transaction are applied one after another, each
// over the versions the ones before left, so that a batch holding many
// events of a key costs the database more a row. See the README's
// Performance section.
func (s *Sink) WriteDefaults() (maxBatch, concurrency int) {
	if s.table.upsert {
		return defaultUpsertBatch, defaultConcurrency
	}
	return defaultMaxBatch, defaultConcurrency
}

// StreamWindow asks the runtime to hold up to 2048 events of a topic or
// partition unacknowledged (core.WindowedSink), so that the default
// Writes, and the Writes waiting together for one transaction, fill up.
func (s *Sink) StreamWindow() int { return streamWindow }

// The sink's defaults of the runtime's settings.
const (
	defaultMaxBatch    = 1024
	defaultUpsertBatch = 256
	defaultConcurrency = 4
	streamWindow       = 2048
)

var (
	_ core.Sink         = (*Sink)(nil)
	_ core.BatchingSink = (*Sink)(nil)
	_ core.WindowedSink = (*Sink)(nil)
)
