package mysql_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	connector "github.com/tributary/tributary/connectors/mysql"
	"github.com/tributary/tributary/core"
)

// router records the handlers a source mounts on the admin listener.
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
		delete(r.h, pattern)
		r.mu.Unlock()
	}, nil
}

func (r *router) post(pattern, body string) (int, string) {
	r.mu.Lock()
	h := r.h[pattern]
	r.mu.Unlock()
	if h == nil {
		return 0, "not mounted"
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/", strings.NewReader(body)))
	return w.Code, w.Body.String()
}

// TestOnDemandSnapshotDeduplicated: an on-demand snapshot of a table the
// application writes meanwhile ends with every key's last change matching
// the table, and no snapshot row after a newer change of its key.
func TestOnDemandSnapshotDeduplicated(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE a (id INT PRIMARY KEY, v INT)`, `CREATE TABLE nokey (v INT)`)
	for i := 1; i <= 45; i++ {
		d.exec(t, sprintf(`INSERT INTO a VALUES (%d, %d)`, i, i))
	}
	cfg := d.config("a", "nokey")
	cfg["snapshot"] = map[string]any{"mode": "never", "chunk_size": 10}
	src := connector.New()
	if err := src.Configure(core.NewConfig("mytest", cfg)); err != nil {
		t.Fatal(err)
	}
	adm := &router{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := src.Open(ctx, core.Env{Name: "mytest", StateDir: t.TempDir(), Admin: adm}, core.Position{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(t, src) })
	const ep = "POST /v1/connectors/mytest/snapshot"
	if code, body := adm.post(ep, `{"table":"`+d.name+`.nope"}`); code != http.StatusBadRequest {
		t.Fatalf("unknown table: %d %s", code, body)
	}
	if code, body := adm.post(ep, `{"table":"`+d.name+`.a"}`); code != http.StatusAccepted {
		t.Fatalf("snapshot request: %d %s", code, body)
	}
	if code, body := adm.post(ep, `{"table":"`+d.name+`.a"}`); code != http.StatusConflict {
		t.Fatalf("second request: %d %s", code, body)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 45; i += 4 {
			_, _ = d.sql.Exec(sprintf(`UPDATE a SET v = v + 1000 WHERE id = %d`, i))
			_, _ = d.sql.Exec(sprintf(`DELETE FROM a WHERE id = %d`, i+1))
			_, _ = d.sql.Exec(sprintf(`INSERT INTO a VALUES (%d, 7)`, 100+i))
		}
	}()
	state := map[string]string{}
	reads := 0
	deadline := time.Now().Add(45 * time.Second)
	for {
		rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		b, err := src.Read(rctx)
		rcancel()
		if err != nil && rctx.Err() == nil {
			t.Fatal(err)
		}
		for _, ch := range b {
			if ch.Meta["kind"] == "heartbeat" {
				continue
			}
			k := fmt.Sprint(ch.Key["id"])
			switch ch.Op {
			case core.OpDelete:
				delete(state, k)
			case core.OpRead:
				reads++
				fallthrough
			default:
				state[k] = fmt.Sprint(ch.After["v"])
			}
		}
		snap, _ := src.Status()["on_demand_snapshot"].(map[string]any)
		select {
		case <-done:
			if snap["state"] == "done" && err != nil {
				goto check
			}
		default:
		}
		if snap["state"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("on-demand snapshot: %v", snap)
		}
	}
check:
	want := map[string]string{}
	rows, err := d.sql.Query(`SELECT id, v FROM a`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, v int
		_ = rows.Scan(&id, &v)
		want[fmt.Sprint(id)] = fmt.Sprint(v)
	}
	rows.Close()
	// Keys the snapshot read without a later stream change must match;
	// keys the stream touched end with their stream state.
	for k, v := range want {
		if state[k] != v {
			t.Errorf("key %s ends at %q, the table has %q", k, state[k], v)
		}
	}
	for k := range state {
		if _, ok := want[k]; !ok {
			t.Errorf("key %s ends present, the table has none", k)
		}
	}
	snap := src.Status()["on_demand_snapshot"].(map[string]any)
	if reads == 0 || snap["rows"] != reads {
		t.Fatalf("%d reads, status %v", reads, snap)
	}
	t.Logf("on-demand snapshot: %v", snap)
}
