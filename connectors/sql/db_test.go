package sql_test

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// servers lists the real databases the polling tests run against.
var servers = []struct {
	name string
	open func(testing.TB) *testDB
}{
	{name: "postgres", open: postgresDB},
	{name: "mariadb", open: mysqlDB},
}

func TestCursorPolling(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			d := srv.open(t)
			tbl := table("orders")
			d.exec(t, "CREATE TABLE "+tbl+" (id BIGINT PRIMARY KEY, val VARCHAR(50) NOT NULL, updated_at "+d.timestampType()+" NOT NULL)")
			d.dropLater(t, tbl)
			t0 := time.Date(2024, 5, 1, 10, 0, 0, 123456000, time.UTC)
			at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
			// Three rows share a timestamp and the page size is 2: paging
			// must continue inside one timestamp by the key.
			for i, sec := range []int{1, 1, 1, 2} {
				d.exec(t, "INSERT INTO "+tbl+" (id, val, updated_at) VALUES (?, ?, ?)", i+1, "v1", at(sec))
			}
			s := newSource(t, map[string]any{
				"driver": d.driver, "dsn": d.dsn, "schedule": "@every 20ms",
				"table": tbl, "key": []any{"id"}, "page_size": 2,
				"cursor": map[string]any{"column": "updated_at", "type": "timestamp", "look_back": "1m"},
			})
			open(t, s, testEnv(t), core.Position{})
			got := readN(t, s, 4)
			if want := []string{"update:1:v1", "update:2:v1", "update:3:v1", "update:4:v1"}; !slices.Equal(summary(got), want) {
				t.Fatalf("first run: %v, want %v", summary(got), want)
			}
			if got[0].After["updated_at"].(time.Time).UnixNano() != at(1).UnixNano() {
				t.Fatalf("updated_at read as %v, want %v", got[0].After["updated_at"], at(1))
			}
			ackAll(t, s, got)

			// A transaction commits late: its row's timestamp is older than
			// the watermark when it becomes visible.
			ctx := context.Background()
			tx, err := d.db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(d.rebind("INSERT INTO "+tbl+" (id, val, updated_at) VALUES (?, ?, ?)"), 5, "late", at(1)); err != nil {
				t.Fatal(err)
			}
			// Meanwhile a row appears with the watermark's own timestamp,
			// after the rows of that timestamp were read.
			d.exec(t, "INSERT INTO "+tbl+" (id, val, updated_at) VALUES (?, ?, ?)", 6, "same", at(2))
			mid := readN(t, s, 1)
			if want := []string{"update:6:same"}; !slices.Equal(summary(mid), want) {
				t.Fatalf("same-timestamp row: %v, want %v", summary(mid), want)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			late := readN(t, s, 1)
			if want := []string{"update:5:late"}; !slices.Equal(summary(late), want) {
				t.Fatalf("late commit: %v, want %v", summary(late), want)
			}
			// An update is a new change; the rows read again by the
			// look-back window are not.
			d.exec(t, "UPDATE "+tbl+" SET val = ?, updated_at = ? WHERE id = ?", "v2", at(3), 2)
			upd := readN(t, s, 1)
			upd = append(upd, settle(t, s, 150*time.Millisecond)...)
			if want := []string{"update:2:v2"}; !slices.Equal(summary(upd), want) {
				t.Fatalf("after update: %v, want %v", summary(upd), want)
			}
		})
	}
}

func TestSnapshotPolling(t *testing.T) {
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			d := srv.open(t)
			tbl := table("customers")
			d.exec(t, "CREATE TABLE "+tbl+" (id BIGINT PRIMARY KEY, val VARCHAR(50) NOT NULL, balance DECIMAL(12,2))")
			d.dropLater(t, tbl)
			for i := 1; i <= 5; i++ {
				d.exec(t, "INSERT INTO "+tbl+" (id, val, balance) VALUES (?, ?, ?)", i, "v1", "10.50")
			}
			env := testEnv(t)
			values := map[string]any{
				"driver": d.driver, "dsn": d.dsn, "schedule": "@every 20ms",
				"mode": "snapshot", "table": tbl, "key": []any{"id"},
			}
			s := newSource(t, values)
			open(t, s, env, core.Position{})
			got := readN(t, s, 5)
			for _, ch := range got {
				if ch.Op != core.OpCreate {
					t.Fatalf("first run emitted %s, want create", ch.Op)
				}
			}
			if b := got[0].After["balance"]; b == nil || b.(interface{ String() string }).String() != "10.50" {
				t.Fatalf("balance read as %#v, want the exact decimal 10.50", b)
			}
			ackAll(t, s, got)
			if extra := settle(t, s, 100*time.Millisecond); len(extra) > 0 {
				t.Fatalf("unchanged table emitted %v", summary(extra))
			}
			d.exec(t, "UPDATE "+tbl+" SET val = ? WHERE id = ?", "v2", 2)
			d.exec(t, "DELETE FROM "+tbl+" WHERE id = ?", 4)
			d.exec(t, "INSERT INTO "+tbl+" (id, val) VALUES (?, ?)", 9, "v1")
			diff := readN(t, s, 3)
			sum := summary(diff)
			sort.Strings(sum)
			if want := []string{"create:9:v1", "delete:4:", "update:2:v2"}; !slices.Equal(sum, want) {
				t.Fatalf("diff: %v, want %v", sum, want)
			}
			// Restart before the acknowledgement: the same changes again,
			// at the same positions.
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			s2 := newSource(t, values)
			open(t, s2, env, got[len(got)-1].Position)
			again := readN(t, s2, 3)
			pos := map[string]bool{}
			for _, ch := range diff {
				pos[string(ch.Position.Data)] = true
			}
			for _, ch := range again {
				if !pos[string(ch.Position.Data)] {
					t.Fatalf("change at %s after the restart was not read before it", ch.Position)
				}
			}
			ackAll(t, s2, again)
			if extra := settle(t, s2, 100*time.Millisecond); len(extra) > 0 {
				t.Fatalf("after acknowledgement: %v", summary(extra))
			}
		})
	}
}

// sqliteTables gives each conformance check its own SQLite file. It
// opens the file only for each change, so that no connection of its own
// is running when the kit counts goroutines.
type sqliteTables struct {
	dir   string
	mu    sync.Mutex
	paths map[string]string
	n     map[string]int
}

func (st *sqliteTables) path(t conformance.TB) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.paths == nil {
		st.paths, st.n = map[string]string{}, map[string]int{}
	}
	p, ok := st.paths[t.Name()]
	if !ok {
		p = filepath.Join(st.dir, fmt.Sprint(len(st.paths))+".db")
		st.paths[t.Name()] = p
		st.exec(t, p, "CREATE TABLE items (id INTEGER PRIMARY KEY, val TEXT NOT NULL)")
	}
	return p
}

func (st *sqliteTables) exec(t conformance.TB, path, q string, args ...any) {
	t.Helper()
	db, err := dbsql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (st *sqliteTables) produce(t conformance.TB, k int) {
	p := st.path(t)
	st.mu.Lock()
	defer st.mu.Unlock()
	for range k {
		st.n[t.Name()]++
		st.exec(t, p, "INSERT INTO items (id, val) VALUES (?, ?)", st.n[t.Name()], "v")
	}
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		caps   conformance.Capabilities
	}{
		{name: "cursor", values: map[string]any{
			"cursor": map[string]any{"column": "id", "type": "integer", "look_back": "5"}, "page_size": 7,
		}, caps: conformance.Capabilities{Resume: true, Ordered: true}},
		{name: "snapshot", values: map[string]any{"mode": "snapshot"},
			caps: conformance.Capabilities{Resume: true, OrderedReason: "a snapshot diff has no order between keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &sqliteTables{dir: t.TempDir()}
			conformance.Run(t, conformance.Harness{
				New: func(t conformance.TB) core.Source {
					v := map[string]any{"driver": "sqlite", "dsn": sqliteDSN(st.path(t)), "schedule": "@every 10ms", "table": "items", "key": []any{"id"}}
					for k, x := range tt.values {
						v[k] = x
					}
					return newSource(t, v)
				},
				Produce:      st.produce,
				Capabilities: tt.caps,
			})
		})
	}
}
