// Package sql registers the "sql_poll" source connector: a table or query
// of PostgreSQL, MySQL/MariaDB, SQLite, SQL Server or Oracle polled on a
// schedule, by a watermark column (cursor mode) or by diffing the whole
// result against a local index (snapshot mode). See README.md.
package sql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"  // postgres
	_ "github.com/microsoft/go-mssqldb" // sqlserver
	_ "github.com/sijms/go-ora/v2"      // oracle
	_ "modernc.org/sqlite"              // sqlite

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// Type is the connector type ID.
const Type = "sql_poll"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Polls a SQL table or query (PostgreSQL, MySQL/MariaDB, SQLite, SQL Server, Oracle) by a watermark column or by snapshot diff, emitting row changes.",
		Fields:  Fields(),
		New:     func() core.Source { return New() },
	}
}

// Source is the sql_poll connector.
type Source struct {
	cfg   Config
	fetch *fetcher
	inner *poll.Source
	db    atomic.Pointer[sql.DB]
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

var errNotConfigured = errors.New("sql_poll source used before Configure")

// Configure decodes and validates the configuration and compiles the
// query. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	text := cfg.Query
	if text == "" {
		text = generatedQuery(&cfg)
	}
	q, err := compileQuery(c.Name, text, cfg.Driver)
	if err != nil {
		return &core.FieldError{Path: "query", Err: err}
	}
	s.cfg = cfg
	s.fetch = &fetcher{
		cfg:    &s.cfg,
		q:      q,
		paged:  strings.Contains(text, ":"+ParamLimit),
		source: core.SourceInfo{System: cfg.Driver, Table: cfg.Table},
	}
	pc := poll.Config{Fetcher: s.fetch, Source: s.fetch.source}
	cfg.ScheduleConfig.Apply(&pc)
	if cfg.Mode == ModeCursor {
		pc.Mode, pc.Cursor = poll.ModeCursor, poll.CursorKind(cfg.Cursor.Type)
		pc.LookBack, pc.LookBackCount, _ = cfg.lookBack()
	} else {
		pc.Mode = poll.ModeSnapshot
	}
	inner, err := poll.NewSource(pc)
	if err != nil {
		return err
	}
	s.inner = inner
	return nil
}

// dsn returns the connection string with what the connector relies on:
// MySQL timestamps parsed as time.Time in UTC.
func (s *Source) dsn() (string, error) {
	if s.cfg.Driver != DriverMySQL {
		return s.cfg.DSN, nil
	}
	mc, err := mysql.ParseDSN(s.cfg.DSN)
	if err != nil {
		return "", core.Fatal(&core.FieldError{Path: "dsn", Err: errors.New("is not a MySQL DSN such as user:pass@tcp(host:3306)/db")})
	}
	mc.ParseTime = true
	return mc.FormatDSN(), nil
}

// Open connects to the database, checks the connection and starts the
// schedule from `from`.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.inner == nil {
		return core.Fatal(errNotConfigured)
	}
	dsn, err := s.dsn()
	if err != nil {
		return err
	}
	db, err := sql.Open(sqlDriverName(s.cfg.Driver), dsn)
	if err != nil {
		return core.Fatal(fmt.Errorf("open %s database: %w", s.cfg.Driver, err))
	}
	db.SetMaxOpenConns(s.cfg.MaxOpenConns)
	db.SetMaxIdleConns(s.cfg.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("connect to %s database: %w", s.cfg.Driver, err)
	}
	s.db.Store(db)
	s.fetch.db = db
	if err := s.inner.Open(ctx, env, from); err != nil {
		db.Close()
		s.db.Store(nil)
		return err
	}
	return nil
}

// Read returns the next page of row changes.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	if s.inner == nil {
		return nil, core.Fatal(errNotConfigured)
	}
	return s.inner.Read(ctx)
}

// Ack advances the local state up to pos.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	if s.inner == nil {
		return errNotConfigured
	}
	return s.inner.Ack(ctx, pos)
}

// Close stops polling and closes the database connections. It is safe to
// call twice and before Open.
func (s *Source) Close(ctx context.Context) error {
	if s.inner == nil {
		return nil
	}
	err := s.inner.Close(ctx)
	if db := s.db.Swap(nil); db != nil {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s database: %w", s.cfg.Driver, cerr)
		}
	}
	return err
}

// Status reports the schedule, watermark and pending changes.
func (s *Source) Status() map[string]any {
	if s.inner == nil {
		return map[string]any{"configured": false}
	}
	st := s.inner.Status()
	st["driver"] = s.cfg.Driver
	if s.cfg.Table != "" {
		st["table"] = s.cfg.Table
	}
	return st
}

// Health pings the database.
func (s *Source) Health(ctx context.Context) error {
	if s.inner == nil {
		return errNotConfigured
	}
	if err := s.inner.Health(ctx); err != nil {
		return err
	}
	db := s.db.Load()
	if db == nil {
		return poll.ErrClosed
	}
	return db.PingContext(ctx)
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
