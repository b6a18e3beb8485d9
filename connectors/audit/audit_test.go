package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/statedb"
)

// The same event written twice, in two calls and twice in one call, is
// logged once, and every delivery is reported delivered.
func TestWriteLogsEachEventOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		write(t, s, deliveries(eventRange(0, 10)...))
		write(t, s, deliveries(eventRange(0, 10)...))
		write(t, s, deliveries(event(10), event(10), event(3)))
		if n := count(t, s, values); n != 11 {
			t.Errorf("the log holds %d rows, want 11", n)
		}
		if got := search(t, s, audit.Query{ID: event(3).ID}); len(got) != 1 {
			t.Errorf("event %s logged %d times, want once", event(3).ID, len(got))
		}
	})
}

// An event comes back from the log as it went in: every attribute, JSON
// data as its text, other data as its bytes.
func TestSearchReturnsEventsAsWritten(t *testing.T) {
	full := &core.Event{
		ID: "full", Source: "/erp", SpecVersion: core.SpecVersion, Type: "com.example.invoice.issued",
		Subject: "inv-1", Time: time.Date(2026, 3, 2, 8, 30, 15, 123456000, time.FixedZone("CET", 3600)),
		DataContentType: "application/json", DataSchema: "https://schemas.example/invoice/1",
		Data:         json.RawMessage(`{"b":1, "a":[true,null,"x"]}`),
		PartitionKey: "inv-1", TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	binary := &core.Event{
		ID: "binary", Source: "/files", SpecVersion: core.SpecVersion, Type: "com.example.file.received",
		DataContentType: "application/octet-stream", Data: []byte{0, 1, 0xff, 'a'},
	}
	bare := &core.Event{ID: "bare", Source: "/s", SpecVersion: core.SpecVersion, Type: "com.example.ping"}
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		write(t, s, deliveries(full, binary, bare))
		for _, want := range []*core.Event{full, binary, bare} {
			got := search(t, s, audit.Query{ID: want.ID})
			if len(got) != 1 {
				t.Fatalf("event %s: found %d", want.ID, len(got))
			}
			w := *want
			w.Time = w.Time.UTC()
			if !reflect.DeepEqual(got[0], w) {
				t.Errorf("event %s:\n got %+v\nwant %+v", want.ID, got[0], w)
			}
		}
	})
}

// A Write is one transaction: when one of its events is refused (here by
// a trigger), none of them is logged and every result is a retry carrying
// the error; the same call succeeds once the refusal is lifted. The batch
// spans several INSERT statements, the refused event in the last.
func TestWriteIsOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		lift := refuse(t, s, values, "ev-00290")
		ds := deliveries(eventRange(0, 300)...)
		checkRetried(t, ds, s.Write(context.Background(), ds), "refused by test")
		if n := count(t, s, values); n != 0 {
			t.Fatalf("a refused Write left %d rows, want 0", n)
		}
		lift()
		write(t, s, ds)
		if n := count(t, s, values); n != 300 {
			t.Errorf("the log holds %d rows, want 300", n)
		}
	})
}

// Writes made at once, as the runtime makes them, are each all or
// nothing: when the log refuses an event of one of them, that Write alone
// is retried and the others are logged.
func TestConcurrentWritesFailAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		refuse(t, s, values, "ev-00290")
		const writers, each = 16, 40
		results := make([][]core.Result, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				results[w] = s.Write(context.Background(), deliveries(eventRange(w*each, (w+1)*each)...))
			})
		}
		wg.Wait()
		refused := 290 / each
		for w, rs := range results {
			if w == refused {
				checkRetried(t, deliveries(eventRange(w*each, (w+1)*each)...), rs, "refused by test")
				continue
			}
			for i, r := range rs {
				if r.Status != core.StatusDelivered {
					t.Errorf("write %d, delivery %d: %s, %v; want delivered", w, i, r.Status, r.Err)
				}
			}
		}
		if n := count(t, s, values); n != (writers-1)*each {
			t.Errorf("the log holds %d rows, want %d", n, (writers-1)*each)
		}
	})
}

// A Write whose context is done logs nothing and asks for a retry.
func TestWriteWithDoneContextRetries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ds := deliveries(eventRange(0, 5)...)
		rs := s.Write(ctx, ds)
		checkRetried(t, ds, rs, "context canceled")
		if !errors.Is(rs[0].Err, context.Canceled) {
			t.Errorf("error %v is not context.Canceled", rs[0].Err)
		}
		if n := count(t, s, values); n != 0 {
			t.Errorf("the log holds %d rows, want 0", n)
		}
	})
}

// A sink that is not open (never opened, or closed) asks for a retry.
func TestWriteBeforeOpenRetries(t *testing.T) {
	s := audit.New()
	if err := s.Configure(core.NewConfig("a", nil)); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Write(context.Background(), deliveries(event(1))) {
		if r.Status != core.StatusRetry || r.Err == nil {
			t.Errorf("got %s, %v; want retry with an error", r.Status, r.Err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("close before open: %v", err)
	}
}

// Events logged longer ago than the retention are deleted in the
// background, in batches, while newer ones stay; Close stops the
// goroutine doing it.
func TestRetentionPrunesOldEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		s, _ := openSink(t, values, "retention", "30m", "prune_every", "20ms")
		write(t, s, deliveries(eventRange(0, 2500)...))
		write(t, s, deliveries(eventRange(2500, 2510)...))
		// The first 2500 were logged a day ago.
		table := prefix(values) + "events"
		if _, err := s.DB().SQL().Exec("UPDATE " + table + " SET logged_at = '2026-01-01T00:00:00.000000000Z' WHERE id < 'ev-02500'"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for count(t, s, values) > 10 {
			if time.Now().After(deadline) {
				t.Fatalf("old events not pruned: %d rows left", count(t, s, values))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := ids(search(t, s, audit.Query{})); got != ids(asValues(eventRange(2500, 2510))) {
			t.Errorf("left after pruning: %s, want the 10 new events", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// With retention 0 nothing is ever deleted.
func TestNoRetentionKeepsEverything(t *testing.T) {
	s, _ := openSink(t, map[string]any{}, "prune_every", "5ms")
	write(t, s, deliveries(eventRange(0, 20)...))
	if _, err := s.DB().SQL().Exec("UPDATE audit_events SET logged_at = '2000-01-01T00:00:00.000000000Z'"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := count(t, s, map[string]any{}); n != 20 {
		t.Errorf("the log holds %d rows, want 20", n)
	}
}

// The log survives the sink's Close and Open: it lies in the state
// directory, where audit.Open finds it.
func TestLogSurvivesReopen(t *testing.T) {
	s, dir := openSink(t, map[string]any{})
	write(t, s, deliveries(eventRange(0, 3)...))
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.db")); err != nil {
		t.Fatalf("no audit.db in the state directory: %v", err)
	}
	if err := s.Open(ctx, core.Env{Name: "audit_log", StateDir: dir}); err != nil {
		t.Fatal(err)
	}
	write(t, s, deliveries(eventRange(2, 5)...))
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := audit.Search(ctx, db, audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(evs); got != "ev-00000,ev-00001,ev-00002,ev-00003,ev-00004" {
		t.Errorf("log = %s", got)
	}
}

// audit.Open finds the log the sink writes, on either database, and says
// so when the tables are not there.
func TestOpenFindsTheSinksLog(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, dir := openSink(t, values)
		write(t, s, deliveries(eventRange(0, 3)...))
		ctx := context.Background()
		cfg, err := audit.ParseConfig(core.NewConfig("audit_log", values))
		if err != nil {
			t.Fatal(err)
		}
		db, err := audit.Open(ctx, cfg, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		evs, err := audit.Search(ctx, db, audit.Query{Subject: "o-1"})
		if err != nil || ids(evs) != "ev-00001" {
			t.Errorf("search the log opened: %s, %v; want ev-00001", ids(evs), err)
		}
		cfg.TablePrefix = "nothing_here_"
		if _, err := audit.Open(ctx, cfg, dir); err == nil || !strings.Contains(err.Error(), "has no table nothing_here_replays") {
			t.Errorf("open with another prefix: %v; want the missing table named", err)
		}
	})
}

// audit.Open does not create a log: it says where it looked.
func TestOpenMissingLog(t *testing.T) {
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = audit.Open(context.Background(), cfg, dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "audit.db")) {
		t.Fatalf("err = %v, want one naming %s", err, filepath.Join(dir, "audit.db"))
	}
	if _, err := os.Stat(filepath.Join(dir, "audit.db")); err == nil {
		t.Error("Open created the log")
	}
}

// Replays are recorded with who ran them, when, the filter and the count.
func TestRecordReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		ctx := context.Background()
		at := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
		want := []audit.Replay{
			{ID: "r1", At: at, Who: "alice", Sink: "warehouse", Count: 42, Filter: audit.Query{
				Types: []string{"com.example.order.placed"}, Subject: "o-1", Since: base, Until: base.Add(time.Hour)}},
			{At: at.Add(time.Minute), Who: "127.0.0.1:5555", Sink: "erp"},
		}
		for i := range want {
			id, err := audit.RecordReplay(ctx, s.DB(), want[i])
			if err != nil {
				t.Fatal(err)
			}
			if want[i].ID == "" && id == "" {
				t.Fatal("no id made up")
			}
			want[i].ID = id
		}
		if _, err := audit.RecordReplay(ctx, s.DB(), want[0]); err == nil {
			t.Error("recording replay r1 twice: no error")
		}
		got, err := audit.Replays(ctx, s.DB())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("replays:\n got %+v\nwant %+v", got, want)
		}
	})
}

func asValues(evs []*core.Event) []core.Event {
	out := make([]core.Event, len(evs))
	for i, e := range evs {
		out[i] = *e
	}
	return out
}

// The log keeps where each event lay in the stream, as the delivery says.
func TestWriteKeepsStreamPosition(t *testing.T) {
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		ds := deliveries(event(0), event(1))
		ds[0].Position = "events.com.example.order.placed/2/41"
		write(t, s, ds)
		for _, tt := range []struct {
			id   string
			want sql.NullString
		}{
			{event(0).ID, sql.NullString{String: "events.com.example.order.placed/2/41", Valid: true}},
			{event(1).ID, sql.NullString{}},
		} {
			var got sql.NullString
			q := "SELECT position FROM " + prefix(values) + "events WHERE id = '" + tt.id + "'"
			if err := s.DB().SQL().QueryRow(q).Scan(&got); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if got != tt.want {
				t.Errorf("event %s: position = %+v, want %+v", tt.id, got, tt.want)
			}
		}
	})
}

// A log whose events table predates the position column gets it when the
// sink opens, and keeps its events.
func TestOpenAddsPositionToAnOlderLog(t *testing.T) {
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, "audit.db"), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE audit_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, time TEXT,
			partition_key TEXT, data TEXT, data_base64 TEXT, datacontenttype TEXT, dataschema TEXT, traceparent TEXT, logged_at TEXT NOT NULL)`,
		`INSERT INTO audit_events (id, type, source, logged_at) VALUES ('old-1', 'com.example.order.placed', '/tributary/orders', '2026-01-01T00:00:00.000000000Z')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, core.Env{Name: "audit_log", StateDir: dir}); err != nil {
		t.Fatalf("open over an older log: %v", err)
	}
	defer s.Close(ctx)
	ds := deliveries(event(0))
	ds[0].Position = "t/0/7"
	write(t, s, ds)
	got := search(t, s, audit.Query{})
	if ids(got) != "old-1,ev-00000" && ids(got) != "ev-00000,old-1" {
		t.Errorf("log = %s, want old-1 and ev-00000", ids(got))
	}
	var pos string
	if err := s.DB().SQL().QueryRow(`SELECT position FROM audit_events WHERE id = 'ev-00000'`).Scan(&pos); err != nil || pos != "t/0/7" {
		t.Errorf("position of the new event = %q, %v; want t/0/7", pos, err)
	}
}

// TestDataColumnsKeepJSONAsText: data that is JSON (and UTF-8, and not
// declared as another content type) goes to the data column as its text,
// anything else to data_base64; both come back as they were written.
func TestDataColumnsKeepJSONAsText(t *testing.T) {
	long := `{"note":"` + strings.Repeat("x", 100) + `","n":[1,2.5e3,{"ok":true}]}`
	tests := []struct {
		name     string
		ct       string
		data     string
		wantText bool
	}{
		{name: "json", ct: "application/json", data: long, wantText: true},
		{name: "json without a content type", data: `[1,"two",null]`, wantText: true},
		{name: "cloudevents json", ct: "application/cloudevents+json", data: `"a string"`, wantText: true},
		{name: "cut short", ct: "application/json", data: long[:len(long)-1]},
		{name: "a control character in a string", ct: "application/json", data: "{\"a\":\"x\ty\"}"},
		{name: "a bad escape", ct: "application/json", data: `{"a":"x\qy"}`},
		{name: "two values", ct: "application/json", data: `{} {}`},
		{name: "not UTF-8", ct: "application/json", data: "\"caf\xe9\""},
		{name: "JSON declared as bytes", ct: "application/octet-stream", data: `{"a":1}`},
	}
	forEachBackend(t, func(t *testing.T, values map[string]any) {
		s, _ := openSink(t, values)
		var evs []*core.Event
		for i, tt := range tests {
			e := event(i)
			e.DataContentType, e.Data = tt.ct, []byte(tt.data)
			evs = append(evs, e)
		}
		write(t, s, deliveries(evs...))
		for i, tt := range tests {
			var text, b64 sql.NullString
			q := "SELECT data, data_base64 FROM " + prefix(values) + "events WHERE id = '" + evs[i].ID + "'"
			if err := s.DB().SQL().QueryRow(q).Scan(&text, &b64); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if text.Valid != tt.wantText || b64.Valid == tt.wantText {
				t.Errorf("%s: data set %v, data_base64 set %v; want the text %v", tt.name, text.Valid, b64.Valid, tt.wantText)
			}
			if tt.wantText && text.String != tt.data {
				t.Errorf("%s: data %q, want %q", tt.name, text.String, tt.data)
			}
			got := search(t, s, audit.Query{ID: evs[i].ID})
			if len(got) != 1 || string(got[0].Data) != tt.data {
				t.Errorf("%s: searched data %+v, want %q", tt.name, got, tt.data)
			}
		}
	})
}

// A new SQLite log takes pages of 16 KiB and a write-ahead log; a log
// created with SQLite's 4 KiB pages keeps them, and its events.
func TestNewLogTakesLargePages(t *testing.T) {
	pragma := func(t *testing.T, s *audit.Sink, name string) string {
		t.Helper()
		var v string
		if err := s.DB().SQL().QueryRow("PRAGMA " + name).Scan(&v); err != nil {
			t.Fatalf("PRAGMA %s: %v", name, err)
		}
		return v
	}
	s, _ := openSink(t, map[string]any{})
	write(t, s, deliveries(eventRange(0, 3)...))
	if got, mode := pragma(t, s, "page_size"), pragma(t, s, "journal_mode"); got != "16384" || mode != "wal" {
		t.Errorf("new log: page size %s, journal mode %s; want 16384 and wal", got, mode)
	}

	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, "audit.db"), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE other (x)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := openRuns(t, dir, 16384)
	write(t, old, deliveries(eventRange(0, 3)...))
	if got, mode := pragma(t, old, "page_size"), pragma(t, old, "journal_mode"); got != "4096" || mode != "wal" {
		t.Errorf("older file: page size %s, journal mode %s; want 4096 and wal", got, mode)
	}
	if got := ids(search(t, old, audit.Query{})); got != "ev-00000,ev-00001,ev-00002" {
		t.Errorf("older file holds %s", got)
	}
}
