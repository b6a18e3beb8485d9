package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestSetupErrors: each problem PostgreSQL would only reveal later (or as
// an obscure error) is reported at Open, naming the fix, as a fatal error.
func TestSetupErrors(t *testing.T) {
	d := newDB(t)
	nopk, nothing, ok := d.table("nopk"), d.table("nothing"), d.table("ok")
	role := d.prefix + "_role"
	d.exec(t,
		sprintf(`create table %s (id int, v text)`, nopk),
		sprintf(`create table %s (id int primary key)`, nothing),
		sprintf(`alter table %s replica identity nothing`, nothing),
		sprintf(`create table %s (id int primary key)`, ok),
		sprintf(`drop role if exists %s`, role),
		sprintf(`create role %s login password 'pw'`, role),
		sprintf(`grant select on %s to %s`, ok, role))
	t.Cleanup(func() { d.exec(t, sprintf(`drop owned by %s`, role), sprintf(`drop role if exists %s`, role)) })
	u, _ := url.Parse(d.url)
	u.User = url.UserPassword(role, "pw")

	tests := []struct {
		name string
		edit func(cfg map[string]any)
		want []string
	}{
		{"no primary key", func(cfg map[string]any) { cfg["tables"] = []any{"public." + nopk} }, []string{"no primary key", "REPLICA IDENTITY FULL"}},
		{"replica identity nothing", func(cfg map[string]any) { cfg["tables"] = []any{"public." + nothing} }, []string{"REPLICA IDENTITY NOTHING"}},
		{"missing table", func(cfg map[string]any) { cfg["tables"] = []any{"public." + d.table("absent")} }, []string{"does not exist"}},
		{"no replication privilege", func(cfg map[string]any) { cfg["url"] = u.String() }, []string{"lacks the REPLICATION attribute", "ALTER ROLE"}},
		{"verify without publication", func(cfg map[string]any) { cfg["setup"] = "verify" }, []string{"does not exist", "CREATE PUBLICATION"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := d.config("ok")
			cfg["publication"] = d.publication() + "_" + strings.ReplaceAll(tc.name, " ", "_")
			tc.edit(cfg)
			src := newSource(t, cfg)
			defer closeSource(t, src)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := src.Open(ctx, core.Env{}, core.Position{})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, core.ErrFatal) {
				t.Errorf("error is not fatal: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			_, _ = d.pool.Exec(ctx, `drop publication if exists "`+cfg["publication"].(string)+`"`)
		})
	}
}

// TestCloseReleasesTheSlot: once Close returns, the server no longer
// holds the slot for the closed session, so that the next Open (the
// runtime's restart, another check of the conformance kit) finds it free
// rather than "in use by another consumer".
func TestCloseReleasesTheSlot(t *testing.T) {
	d := newDB(t)
	d.exec(t, sprintf(`create table %s (id int primary key)`, d.table("items")))
	cfg := d.config("items")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	for i := range 50 {
		src := newSource(t, cfg)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := src.Open(ctx, core.Env{Name: "pgtest"}, core.Position{}); err != nil {
			cancel()
			t.Fatalf("Open %d: %v", i+1, err)
		}
		err := src.Close(ctx)
		cancel()
		if err != nil {
			t.Fatalf("Close %d: %v", i+1, err)
		}
		var active bool
		if err := d.pool.QueryRow(context.Background(), `select active from pg_replication_slots where slot_name = $1`, d.slot()).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if active {
			t.Fatalf("after Close %d the slot is still active", i+1)
		}
	}
}
