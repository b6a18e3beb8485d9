package postgres_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	connector "github.com/tributary/tributary/connectors/postgres"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/servicetest"
)

// db is one test's corner of the real PostgreSQL: its names all start with
// prefix, and its slot and publication are dropped when the test ends.
type db struct {
	url    string
	pool   *pgxpool.Pool
	prefix string
}

func newDB(t testing.TB) *db {
	t.Helper()
	url := servicetest.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
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
	d := &db{url: url, pool: pool, prefix: "t_" + short + "_" + hex.EncodeToString(sum[:3])}
	d.cleanup(t)
	t.Cleanup(func() {
		d.cleanup(t)
		pool.Close()
	})
	return d
}

func (d *db) slot() string        { return d.prefix + "_slot" }
func (d *db) publication() string { return d.prefix + "_pub" }
func (d *db) table(n string) string {
	return d.prefix + "_" + n
}

// cleanup drops the test's slot, publication and tables.
func (d *db) cleanup(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		var active bool
		err := d.pool.QueryRow(ctx, `select active from pg_replication_slots where slot_name = $1`, d.slot()).Scan(&active)
		if err != nil {
			break // no slot
		}
		if active {
			_, _ = d.pool.Exec(ctx, `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1`, d.slot())
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if _, err := d.pool.Exec(ctx, `select pg_drop_replication_slot($1)`, d.slot()); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = d.pool.Exec(ctx, `drop publication if exists `+d.publication())
	rows, err := d.pool.Query(ctx, `select tablename from pg_tables where schemaname = 'public' and tablename like $1`, d.prefix+`\_%`)
	if err == nil {
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			_, _ = d.pool.Exec(ctx, `drop table if exists "`+n+`" cascade`)
		}
	}
	rows, err = d.pool.Query(ctx, `select typname from pg_type where typname like $1 and typtype in ('e', 'd')`, d.prefix+`\_%`)
	if err == nil {
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		rows.Close()
		for _, n := range names {
			_, _ = d.pool.Exec(ctx, `drop type if exists "`+n+`" cascade`)
		}
	}
}

// exec runs SQL statements, failing the test on error.
func (d *db) exec(t testing.TB, sqls ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, s := range sqls {
		if _, err := d.pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// config returns a valid configuration for tables, with fast heartbeats.
func (d *db) config(tables ...string) map[string]any {
	ts := make([]any, len(tables))
	for i, t := range tables {
		ts[i] = "public." + d.table(t)
	}
	return map[string]any{
		"url":         d.url,
		"tables":      ts,
		"slot":        d.slot(),
		"publication": d.publication(),
		"heartbeat":   map[string]any{"interval": "100ms"},
	}
}

func newSource(t conformance.TB, values map[string]any) *connector.Source {
	t.Helper()
	src := connector.New()
	if err := src.Configure(core.NewConfig("pgtest", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return src
}

func openSource(t testing.TB, values map[string]any, from core.Position) *connector.Source {
	t.Helper()
	src := newSource(t, values)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Open(ctx, core.Env{Name: "pgtest"}, from); err != nil {
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

// readN reads until n changes arrived.
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
		out = append(out, b...)
	}
	if len(out) > n {
		t.Fatalf("read %d changes, want %d: extra %+v", len(out), n, out[n])
	}
	return out
}

// readNone checks that nothing more arrives within a short wait.
func readNone(t testing.TB, src core.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	b, err := src.Read(ctx)
	if err == nil {
		t.Fatalf("unexpected changes: %+v", b)
	}
}

func ack(t testing.TB, src core.Source, pos core.Position) {
	t.Helper()
	if err := src.Ack(context.Background(), pos); err != nil {
		t.Fatalf("Ack(%s): %v", pos, err)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
