package mysql_test

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	connector "github.com/tributary/tributary/connectors/mysql"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/servicetest"
)

// db is one test's database on the real MariaDB, dropped when the test
// ends.
type db struct {
	dsn  string
	name string
	sql  *sql.DB
}

func newDB(t testing.TB) *db {
	t.Helper()
	dsn := servicetest.MySQL(t)
	name := strings.ToLower(t.Name())
	sum := sha1.Sum([]byte(name))
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	short := b.String()
	if len(short) > 24 {
		short = short[:24]
	}
	d := &db{name: "t_" + short + "_" + hex.EncodeToString(sum[:3])}
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MultiStatements = true
	root, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name+"; CREATE DATABASE "+d.name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	root.Close()
	cfg.DBName = d.name
	d.dsn = cfg.FormatDSN()
	if d.sql, err = sql.Open("mysql", d.dsn+"&time_zone=%27%2B00%3A00%27"); err != nil {
		t.Fatal(err)
	}
	d.sql.SetMaxOpenConns(1)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = d.sql.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name)
		d.sql.Close()
	})
	return d
}

// exec runs SQL statements (each may hold several), failing the test on
// error.
func (d *db) exec(t testing.TB, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for _, s := range sqls {
		if _, err := d.sql.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// config returns a valid configuration for tables, with fast heartbeats.
func (d *db) config(tables ...string) map[string]any {
	ts := make([]any, len(tables))
	for i, t := range tables {
		ts[i] = d.name + "." + t
	}
	return map[string]any{
		"dsn":       d.dsn,
		"tables":    ts,
		"heartbeat": map[string]any{"interval": "200ms"},
	}
}

func newSource(t conformance.TB, values map[string]any) *connector.Source {
	t.Helper()
	src := connector.New()
	if err := src.Configure(core.NewConfig("mytest", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return src
}

// openSource opens a source with state in dir.
func openSource(t testing.TB, values map[string]any, dir string, from core.Position) *connector.Source {
	t.Helper()
	src := newSource(t, values)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Open(ctx, core.Env{Name: "mytest", StateDir: dir}, from); err != nil {
		t.Fatalf("Open(%s): %v", from, err)
	}
	t.Cleanup(func() { closeSource(t, src) })
	return src
}

func closeSource(t testing.TB, src core.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := src.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// readN reads until n changes other than heartbeats arrived.
func readN(t testing.TB, src core.Source, n int) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []core.Change
	for len(out) < n {
		b, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d changes: %v", len(out), n, err)
		}
		for _, ch := range b {
			if ch.Meta["kind"] != "heartbeat" {
				out = append(out, ch)
			}
		}
	}
	if len(out) > n {
		t.Fatalf("read %d changes, want %d: extra %+v", len(out), n, out[n])
	}
	return out
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
