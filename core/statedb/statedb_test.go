package statedb_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/core/statedb"
)

func pragma(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestOpenSetsPragmas(t *testing.T) {
	tests := []struct {
		name string
		opts statedb.Options
		want map[string]string
	}{
		{name: "defaults", opts: statedb.Options{}, want: map[string]string{
			"journal_mode": "wal", "synchronous": "2", "busy_timeout": "10000", "cache_size": "-2000",
		}},
		{name: "normal sync and a cache", opts: statedb.Options{Sync: statedb.SyncNormal, CacheKiB: 32768}, want: map[string]string{
			"journal_mode": "wal", "synchronous": "1", "cache_size": "-32768",
		}},
		{name: "WAL left to the caller, other pragmas", opts: statedb.Options{DeferWAL: true, Pragmas: []string{"temp_store(MEMORY)"}, TxLock: "immediate"}, want: map[string]string{
			"journal_mode": "delete", "temp_store": "2",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := statedb.Open(filepath.Join(t.TempDir(), "state.db"), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for name, want := range tt.want {
				if got := pragma(t, db, name); got != want {
					t.Errorf("PRAGMA %s = %s, want %s", name, got, want)
				}
			}
		})
	}
}

// A path is a file name, not a URI: '%', '#' and spaces stay as they are.
func TestOpenTakesPathAsFileName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a %41 #b.db")
	db, err := statedb.Open(path, statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
}

// Each database opened in memory is its own.
func TestOpenInMemoryIsPrivate(t *testing.T) {
	ctx := context.Background()
	a, err := statedb.Open("", statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := statedb.Open("", statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	// A second statement on a sees what the first wrote: one connection.
	var n int
	if err := a.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count on the same database = %d, %v; want 1", n, err)
	}
	if _, err := b.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Errorf("the second database already has the first one's table: %v", err)
	}
}
