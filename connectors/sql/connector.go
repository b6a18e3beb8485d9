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
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is the sql_poll connector. Its Open, Read, Ack, Close, Status
// and Health are those of the embedded poll.Connector.
type Source struct {
	poll.Connector
	cfg   Config
	fetch *fetcher
	db    atomic.Pointer[sql.DB]
}

// New returns an unconfigured source.
func New() *Source { return &Source{Connector: poll.Connector{Type: Type}} }

// Configure decodes and validates the configuration and compiles the
// query. It does no I/O.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
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
		cfg:     &s.cfg,
		q:       q,
		paged:   strings.Contains(text, ":"+ParamLimit),
		source:  core.SourceInfo{System: cfg.Driver, Table: cfg.Table},
		secrets: dsnSecrets(cfg.DSN),
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
	s.SetSource(inner, poll.ConnectorHooks{Open: s.open, Close: s.release, Status: s.status, Health: s.health})
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

// open connects to the database and checks the connection, before the
// schedule starts. Its errors never quote the connection string nor its
// password, which drivers do when they cannot parse it.
func (s *Source) open(ctx context.Context, _ core.Env) error {
	dsn, err := s.dsn()
	if err != nil {
		return err
	}
	var db *sql.DB
	if s.cfg.Driver == DriverOracle {
		db, err = openOracle(dsn)
	} else {
		db, err = sql.Open(sqlDriverName(s.cfg.Driver), dsn)
	}
	if err != nil {
		return hide(core.Fatal(fmt.Errorf("open %s database: %w", s.cfg.Driver, err)), s.fetch.secrets)
	}
	db.SetMaxOpenConns(s.cfg.MaxOpenConns)
	db.SetMaxIdleConns(s.cfg.MaxOpenConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return hide(classify(fmt.Errorf("connect to %s database: %w", s.cfg.Driver, err)), s.fetch.secrets)
	}
	s.db.Store(db)
	s.fetch.db = db
	return nil
}

// release closes the database connections, if open.
func (s *Source) release() error {
	if db := s.db.Swap(nil); db != nil {
		if err := db.Close(); err != nil {
			return fmt.Errorf("close %s database: %w", s.cfg.Driver, err)
		}
	}
	return nil
}

// status adds the driver and table to the status.
func (s *Source) status(st map[string]any) {
	st["driver"] = s.cfg.Driver
	if s.cfg.Table != "" {
		st["table"] = s.cfg.Table
	}
}

// health pings the database.
func (s *Source) health(ctx context.Context) error {
	db := s.db.Load()
	if db == nil {
		return poll.ErrClosed
	}
	return hide(db.PingContext(ctx), s.fetch.secrets)
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
)
