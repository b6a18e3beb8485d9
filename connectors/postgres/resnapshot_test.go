package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// router is an admin listener for tests: it keeps the mounted handlers.
type router struct {
	mu sync.Mutex
	h  map[string]http.Handler
}

func (r *router) Handle(pattern string, h http.Handler) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		r.h = map[string]http.Handler{}
	}
	r.h[pattern] = h
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.h, pattern)
	}, nil
}

func (r *router) post(t *testing.T, pattern, body string) (int, map[string]any) {
	t.Helper()
	r.mu.Lock()
	h := r.h[pattern]
	r.mu.Unlock()
	if h == nil {
		t.Fatalf("nothing mounted at %q", pattern)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, strings.TrimPrefix(pattern, "POST "), strings.NewReader(body)))
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer %d %q: %v", rec.Code, rec.Body.String(), err)
	}
	return rec.Code, out
}

// TestOnDemandSnapshotDeduplicated re-snapshots a table through the admin
// endpoint while rows are updated, deleted and inserted, and checks that
// every key's events never go back in time (each write sets v from one
// sequence) and end in the table's final state.
func TestOnDemandSnapshotDeduplicated(t *testing.T) {
	d := newDB(t)
	tb, other := d.table("items"), d.table("other")
	const rows = 3000
	d.exec(t,
		sprintf(`drop sequence if exists %s_v`, tb),
		sprintf(`create sequence %s_v`, tb),
		sprintf(`create table %s (id int primary key, v bigint not null)`, tb),
		sprintf(`create table %s (id int primary key)`, other),
		sprintf(`insert into %s select g, nextval('%s_v') from generate_series(1, %d) g`, tb, tb, rows))
	cfg := neverSnapshot(d.config("items", "other"))
	cfg["snapshot"] = map[string]any{"mode": "never", "chunk_size": 100}
	adm := &router{}
	src := newSource(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	if err := src.Open(octx, core.Env{Name: "pgtest", Admin: adm}, core.Position{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeSource(t, src) })
	start := d.confirmedFlush(t)

	// The reader reads and acknowledges everything until the sentinel.
	var (
		mu  sync.Mutex
		got []core.Change
	)
	readErr := make(chan error, 1)
	go func() {
		for {
			b, err := src.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			mu.Lock()
			got = append(got, b...)
			mu.Unlock()
			if err := src.Ack(ctx, b[len(b)-1].Position); err != nil {
				readErr <- err
				return
			}
			for _, ch := range b {
				if ch.Source.Table == tb && ch.Key["id"] == int64(-1) {
					readErr <- nil
					return
				}
			}
		}
	}()

	pattern := "POST /v1/connectors/pgtest/snapshot"
	for _, c := range []struct {
		name, body string
		code       int
	}{
		{"not captured", `{"table":"public.nope"}`, http.StatusBadRequest},
		{"bad body", `{"tables":1}`, http.StatusBadRequest},
	} {
		if code, ans := adm.post(t, pattern, c.body); code != c.code {
			t.Errorf("%s: answered %d %v, want %d", c.name, code, ans, c.code)
		}
	}

	// Writes run during the whole snapshot.
	stopW := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stopW:
				writeErr <- nil
				return
			default:
			}
			id := 1 + rng.IntN(rows+200)
			var q string
			switch rng.IntN(3) {
			case 0:
				q = sprintf(`update %s set v = nextval('%s_v') where id = %d`, tb, tb, id)
			case 1:
				q = sprintf(`delete from %s where id = %d`, tb, id)
			default:
				q = sprintf(`insert into %s values (%d, nextval('%s_v')) on conflict (id) do update set v = excluded.v`, tb, id, tb)
			}
			if _, err := d.pool.Exec(ctx, q); err != nil {
				writeErr <- fmt.Errorf("%s: %w", q, err)
				return
			}
		}
	}()

	code, ans := adm.post(t, pattern, sprintf(`{"table":"%s"}`, tb))
	if code != http.StatusAccepted {
		t.Fatalf("snapshot request answered %d %v, want 202", code, ans)
	}
	if code, ans := adm.post(t, pattern, sprintf(`{"table":"public.%s"}`, other)); code != http.StatusConflict {
		t.Errorf("second request while running answered %d %v, want 409", code, ans)
	}
	var last map[string]any
	waitFor(t, "the on-demand snapshot", func() bool {
		last, _ = src.Status()["on_demand_snapshot"].(map[string]any)
		return last != nil && last["state"] != "running"
	})
	close(stopW)
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if last["state"] != "done" {
		t.Fatalf("snapshot ended %v", last)
	}
	t.Logf("on-demand snapshot: %v", last)
	d.exec(t, sprintf(`insert into %s values (-1, 0)`, tb))
	select {
	case err := <-readErr:
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("timed out reading up to the sentinel")
	}

	final := map[int64]int64{}
	rs, err := d.pool.Query(ctx, sprintf(`select id, v from %s where id > 0`, tb))
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id, v int64
		if err := rs.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		final[id] = v
	}
	rs.Close()

	mu.Lock()
	defer mu.Unlock()
	type state struct {
		v     int64
		gone  bool
		seen  bool
		reads int
	}
	keys := map[int64]*state{}
	positions := map[string]bool{}
	for _, ch := range got {
		if positions[string(ch.Position.Data)] {
			t.Errorf("position %s is not unique", ch.Position)
		}
		positions[string(ch.Position.Data)] = true
		if ch.Source.Table != tb {
			continue
		}
		id := ch.Key["id"].(int64)
		k := keys[id]
		if k == nil {
			k = &state{}
			keys[id] = k
		}
		switch ch.Op {
		case core.OpDelete:
			k.gone = true
		case core.OpRead:
			v := ch.After["v"].(int64)
			if k.seen && (k.gone || v < k.v) {
				t.Errorf("id %d: stale snapshot row v=%d after a newer change (v=%d, deleted %v)", id, v, k.v, k.gone)
			}
			k.v, k.gone, k.reads = v, false, k.reads+1
		default:
			v := ch.After["v"].(int64)
			if k.seen && !k.gone && v < k.v {
				t.Errorf("id %d: %s v=%d after v=%d", id, ch.Op, v, k.v)
			}
			k.v, k.gone = v, false
		}
		k.seen = true
	}
	reads := 0
	for id := int64(1); id <= rows+200; id++ {
		k, want := keys[id], final[id]
		switch {
		case want != 0 && (k == nil || k.gone || k.v != want):
			t.Errorf("id %d: last event %+v, table has v=%d", id, k, want)
		case want == 0 && k != nil && !k.gone:
			t.Errorf("id %d: last event %+v, row is deleted", id, k)
		}
		if k != nil {
			reads += k.reads
		}
	}
	if reads == 0 || reads > rows+200 {
		t.Errorf("%d snapshot rows read", reads)
	}
	if n := last["rows"].(int); n != reads {
		t.Errorf("status counts %d rows, read %d", n, reads)
	}
	waitFor(t, "the slot to confirm past the start", func() bool { return d.confirmedFlush(t) > start })
}
