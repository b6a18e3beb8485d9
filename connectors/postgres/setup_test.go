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
