package filesink_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestRotation: a file is completed when it reaches max_events or
// max_bytes, and each Write returns once its events' files are in place,
// named by the pattern with a sequence.
func TestRotation(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		events int
		want   []int // lines per file
	}{
		{name: "by count", values: map[string]any{"max_events": 2, "max_age": "1h"}, events: 6, want: []int{2, 2, 2}},
		{name: "by size", values: map[string]any{"max_bytes": 1, "max_age": "1h"}, events: 3, want: []int{1, 1, 1}},
		{name: "by age", values: map[string]any{"max_age": "20ms"}, events: 5, want: []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.values["dir"] = dir
			tt.values["name"] = "orders-{seq}.jsonl"
			s := newSink(t, tt.values)
			open(t, s)
			var ds []core.Delivery
			for i := range tt.events {
				ds = append(ds, event([]string{"a", "b"}[i%2], map[string]any{"n": i}))
			}
			rs := write(t, s, ds...)
			for i, r := range rs {
				if r.Status != core.StatusDelivered {
					t.Fatalf("delivery %d: %s (%v)", i, r.Status, r.Err)
				}
			}
			var got []int
			var names []string
			for _, name := range visible(t, dir) {
				names = append(names, name)
				got = append(got, len(lines(t, filepath.Join(dir, name))))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lines per file %v (%v), want %v", got, names, tt.want)
			}
			if names[0] != "orders-000001.jsonl" {
				t.Errorf("first file %s, want orders-000001.jsonl", names[0])
			}
			if h := hidden(t, dir); len(h) != 0 {
				t.Errorf("temporary files left: %v", h)
			}
		})
	}
}

// TestNoPartialFileVisible: while a Write waits for its file, the file is
// only under its hidden temporary name; a reader listing the directory
// sees nothing until it is whole.
func TestNoPartialFileVisible(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, map[string]any{"dir": dir, "max_age": "300ms", "linger": "0s"})
	open(t, s)
	done := make(chan []core.Result)
	go func() { done <- s.Write(context.Background(), []core.Delivery{event("a", nil)}) }()
	time.Sleep(100 * time.Millisecond)
	if v := visible(t, dir); len(v) != 0 {
		t.Fatalf("files visible before completion: %v", v)
	}
	if h := hidden(t, dir); len(h) != 1 || !strings.HasPrefix(h[0], ".tributary-drop-") {
		t.Fatalf("hidden files %v, want one temporary file of the sink", h)
	}
	select {
	case rs := <-done:
		if rs[0].Status != core.StatusDelivered {
			t.Fatalf("Write: %s (%v)", rs[0].Status, rs[0].Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write did not return after max_age")
	}
	if v := visible(t, dir); len(v) != 1 || !strings.HasPrefix(v[0], "drop-") || !strings.HasSuffix(v[0], "-000001.jsonl") {
		t.Errorf("files %v, want one named drop-<time>-000001.jsonl", v)
	}
}

// TestWriteCancelledWhileWaiting: a Write waiting for its file returns
// when its context ends, its deliveries retried.
func TestWriteCancelledWhileWaiting(t *testing.T) {
	s := newSink(t, map[string]any{"dir": t.TempDir(), "max_age": "1h", "linger": "0s"})
	open(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	rs := s.Write(ctx, []core.Delivery{event("a", nil), event("a", nil)})
	if statuses(rs) != "retry retry" || rs[0].Err == nil || rs[1].Err != nil {
		t.Errorf("results %s (%v, %v), want retry with the reason on the first of the key", statuses(rs), rs[0].Err, rs[1].Err)
	}
}

// TestRestart: Open removes the temporary files a crash left (their
// events come again) and numbers files after the last one in place.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	values := map[string]any{"dir": dir, "max_events": 1, "name": "o-{seq}.jsonl"}
	s := newSink(t, values)
	open(t, s)
	write(t, s, event("a", nil), event("a", nil))
	s.Close(context.Background())
	leftover := filepath.Join(dir, ".tributary-drop-o-000009.jsonl.tmp")
	other := filepath.Join(dir, ".other-file.tmp")
	for _, p := range []string{leftover, other} {
		if err := os.WriteFile(p, []byte(`{"id":"half`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = newSink(t, values)
	open(t, s)
	write(t, s, event("a", nil))
	if got, want := visible(t, dir), []string{"o-000001.jsonl", "o-000002.jsonl", "o-000003.jsonl"}; !reflect.DeepEqual(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the sink's leftover temporary file is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a temporary file that is not the sink's was removed: %v", err)
	}
}

// TestCSVGzip: CSV with a header of the column names, fields quoted as
// RFC 4180 says, numbers with every digit, gzipped.
func TestCSVGzip(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, map[string]any{
		"dir": dir, "format": "csv", "gzip": true, "max_events": 2,
		"columns": []any{
			map[string]any{"name": "id", "value": "event.id"},
			map[string]any{"name": "total", "value": "event.data.total"},
			map[string]any{"name": "note", "value": "event.data.note"},
		},
	})
	open(t, s)
	a := event("a", nil)
	a.Event.Data = []byte(`{"total": 1234567890123.4567890123, "note": "two, \"quoted\""}`)
	b := event("b", map[string]any{"total": 5, "note": "plain"})
	if rs := write(t, s, a, b); statuses(rs) != "delivered delivered" {
		t.Fatalf("Write: %s", statuses(rs))
	}
	files := visible(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], ".csv.gz") {
		t.Fatalf("files %v, want one .csv.gz", files)
	}
	got := lines(t, filepath.Join(dir, files[0]))
	want := []string{"id,total,note", a.Event.ID + `,1234567890123.4567890123,"two, ""quoted"""`, b.Event.ID + ",5,plain"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("lines\n%q\nwant\n%q", got, want)
	}
}

// TestLineRefused: a line an expression cannot make is refused, with the
// expression's error, and the later delivery of its key is not written.
func TestLineRefused(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, map[string]any{
		"dir": dir, "max_events": 10, "max_age": "10ms",
		"columns": []any{map[string]any{"name": "n", "value": `event.data.n > 0 ? event.data.n : deadLetter("n must be positive")`}},
	})
	open(t, s)
	rs := write(t, s, event("a", map[string]any{"n": 1}), event("b", map[string]any{"n": -1}), event("b", map[string]any{"n": 2}), event("c", map[string]any{"n": 3}))
	if got, want := statuses(rs), "delivered failed retry delivered"; got != want {
		t.Fatalf("statuses %s, want %s", got, want)
	}
	if !strings.Contains(rs[1].Err.Error(), "n must be positive") {
		t.Errorf("error %v does not carry the reason", rs[1].Err)
	}
	if rs[2].Err != nil {
		t.Errorf("the held delivery has error %v", rs[2].Err)
	}
	var all []string
	for _, f := range visible(t, dir) {
		all = append(all, lines(t, filepath.Join(dir, f))...)
	}
	if want := []string{`{"n":1}`, `{"n":3}`}; !reflect.DeepEqual(all, want) {
		t.Errorf("lines %q, want %q", all, want)
	}
}

// TestLinger: a file no event was added to for linger is completed well
// before max_age, so that Writes waiting for it return.
func TestLinger(t *testing.T) {
	dir := t.TempDir()
	s := newSink(t, map[string]any{"dir": dir, "max_age": "1h", "linger": "30ms"})
	open(t, s)
	start := time.Now()
	if rs := write(t, s, event("a", nil), event("b", nil)); statuses(rs) != "delivered delivered" {
		t.Fatalf("Write: %s", statuses(rs))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Write took %s; the file should complete 30ms after its last event", d)
	}
	if v := visible(t, dir); len(v) != 1 {
		t.Errorf("files %v, want one", v)
	}
}
