package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/statedb"
)

// openRuns opens an audit sink on the SQLite log in dir whose id runs
// take runSize ids, extra as in openSink; it is closed at cleanup.
func openRuns(t testing.TB, dir string, runSize int, extra ...any) *audit.Sink {
	t.Helper()
	v := map[string]any{}
	for i := 0; i+1 < len(extra); i += 2 {
		v[extra[i].(string)] = extra[i+1]
	}
	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", v)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	audit.SetRunSize(s, runSize)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "audit_log", StateDir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// randomEvents returns n events with random UUID ids, as event ids are.
func randomEvents(n int) []*core.Event {
	out := make([]*core.Event, n)
	for i := range out {
		e := event(i)
		e.ID = uuid.NewString()
		out[i] = e
	}
	return out
}

// runs returns how many id runs the log of s has, by level.
func runs(t testing.TB, s *audit.Sink) map[int]int {
	t.Helper()
	rows, err := s.DB().SQL().Query("SELECT level, count(*) FROM audit_id_runs GROUP BY level")
	if err != nil {
		t.Fatalf("read the id runs: %v", err)
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var l, n int
		if err := rows.Scan(&l, &n); err != nil {
			t.Fatal(err)
		}
		out[l] = n
	}
	return out
}

// waitMerged waits until no level of the log of s has 4 runs (the
// merges are done).
func waitMerged(t testing.TB, s *audit.Sink) map[int]int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rs := runs(t, s)
		done := true
		for _, n := range rs {
			done = done && n < 4
		}
		if done {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs not merged: %v", rs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkFound checks that Search and Holds find each of evs once, by id,
// in db.
func checkFound(t testing.TB, db *audit.DB, evs []*core.Event) {
	t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		got, err := audit.Search(ctx, db, audit.Query{ID: e.ID})
		if err != nil || len(got) != 1 || got[0].ID != e.ID {
			t.Fatalf("search --id %s: %d events (%s), %v; want it once", e.ID, len(got), ids(got), err)
		}
		if held, err := audit.Holds(ctx, db, e.ID); err != nil || !held {
			t.Fatalf("Holds(%s) = %v, %v; want true", e.ID, held, err)
		}
	}
}

// An event the log holds is never logged twice: not when it comes again
// in the same Write, in a later one while its id is in the tail, in a
// sorted run, or in a run merged from others, and not after the sink
// closes and opens again (the tail read back from the events table). The
// runs are what they should be: merged four by four, and Search and
// Holds find every event through them.
func TestDuplicatesRefusedAcrossRunsAndRestart(t *testing.T) {
	dir := t.TempDir()
	s := openRuns(t, dir, 16)
	evs := randomEvents(400)
	for i := 0; i < len(evs); i += 25 {
		batch := evs[i : i+25]
		// Each Write holds an event of the previous one and one twice.
		ds := deliveries(batch...)
		if i > 0 {
			ds = append(ds, core.Delivery{Event: evs[i-1]})
		}
		ds = append(ds, core.Delivery{Event: batch[0]})
		write(t, s, ds)
	}
	if n := count(t, s, nil); n != 400 {
		t.Fatalf("the log holds %d rows, want 400", n)
	}
	// 16 runs of 25 or 26 ids (level 0), merged four by four into 4
	// of level 1, merged into one of level 2.
	if rs := waitMerged(t, s); rs[2] != 1 || len(rs) != 1 {
		t.Fatalf("runs by level %v; want the 400 ids merged into one run of level 2", rs)
	}
	// Two runs of level 0 beside it.
	extra := randomEvents(60)
	write(t, s, deliveries(extra[:30]...))
	write(t, s, deliveries(extra[30:]...))
	if rs := runs(t, s); rs[0] != 2 || rs[2] != 1 {
		t.Fatalf("runs by level %v; want 2 of level 0 and 1 of level 2", rs)
	}
	evs = append(evs, extra...)
	// Every event again, in one Write and one at a time.
	write(t, s, deliveries(evs...))
	for _, e := range evs[:50] {
		write(t, s, deliveries(e))
	}
	if n := count(t, s, nil); n != 460 {
		t.Fatalf("after the events came again the log holds %d rows, want 460", n)
	}
	checkFound(t, s.DB(), evs)

	// Closed with ids in the tail (fewer than a run), opened again.
	tail := randomEvents(10)
	write(t, s, deliveries(tail...))
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := openRuns(t, dir, 16)
	more := randomEvents(30)
	all := append(append(append([]*core.Event{}, evs...), tail...), more...)
	write(t, s2, deliveries(all...))
	if n := count(t, s2, nil); n != 500 {
		t.Fatalf("after a restart the log holds %d rows, want 500", n)
	}
	checkFound(t, s2.DB(), all)
	if got := search(t, s2, audit.Query{ID: "no-such-event"}); len(got) != 0 {
		t.Errorf("search --id no-such-event: %s", ids(got))
	}
}

// An event whose row retention deleted is logged again when it comes
// again, though its id is still in a run; one whose row stays is not.
func TestPrunedEventIsLoggedAgain(t *testing.T) {
	dir := t.TempDir()
	s := openRuns(t, dir, 8, "retention", "30m", "prune_every", "20ms")
	evs := randomEvents(40)
	write(t, s, deliveries(evs...))
	for _, e := range evs[:10] {
		if _, err := s.DB().SQL().Exec("UPDATE audit_events SET logged_at = '2026-01-01T00:00:00.000000000Z' WHERE id = ?", e.ID); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for count(t, s, nil) > 30 {
		if time.Now().After(deadline) {
			t.Fatalf("old events not pruned: %d rows left", count(t, s, nil))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held, err := audit.Holds(context.Background(), s.DB(), evs[0].ID); err != nil || held {
		t.Fatalf("Holds of a pruned event = %v, %v; want false", held, err)
	}
	// The subjects' index lost the entries of the pruned events, and
	// kept the others the runs cover.
	if got := column(t, s, `SELECT (SELECT count(*) FROM audit_subjects WHERE seq NOT IN (SELECT seq FROM audit_events)) || ' ' || (SELECT count(*) FROM audit_subjects)`); len(got) != 1 || got[0] != "0 30" {
		t.Errorf("subject entries of deleted events, all entries = %v; want 0 30", got)
	}
	write(t, s, deliveries(evs...))
	if n := count(t, s, nil); n != 40 {
		t.Fatalf("the log holds %d rows, want 40: the 10 pruned logged again, the 30 others not", n)
	}
	checkFound(t, s.DB(), evs)
}

// A log opened by another reader (audit.Open, as `tributary events
// search` does beside the sidecar) finds events by id while the sink
// goes on writing, flushing and merging runs.
func TestReaderFollowsTheWriter(t *testing.T) {
	dir := t.TempDir()
	s := openRuns(t, dir, 16)
	evs := randomEvents(300)
	write(t, s, deliveries(evs[:20]...))
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(context.Background(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkFound(t, db, evs[:20])
	for i := 20; i < len(evs); i += 20 {
		write(t, s, deliveries(evs[i:i+20]...))
		checkFound(t, db, evs[i-10:i+20])
	}
	waitMerged(t, s)
	checkFound(t, db, evs)
}

// A table a merge left unfinished (a crash in the middle) is dropped,
// and its number is not taken again.
func TestUnfinishedMergeIsDropped(t *testing.T) {
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, "audit.db"), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := openRuns(t, dir, 8)
	write(t, s, deliveries(randomEvents(4)...))
	if _, err := db.Exec(`CREATE TABLE audit_ids_7 (h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (h, seq)) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = openRuns(t, dir, 8)
	evs := randomEvents(40)
	for i := 0; i < len(evs); i += 8 {
		write(t, s, deliveries(evs[i:i+8]...))
	}
	waitMerged(t, s)
	tables := map[int64]bool{}
	for _, name := range column(t, s, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'audit_ids_%'`) {
		var n int64
		if _, err := fmt.Sscanf(name, "audit_ids_%d", &n); err != nil {
			t.Fatalf("run table %s: %v", name, err)
		}
		tables[n] = true
	}
	catalog := column(t, s, `SELECT run FROM audit_id_runs`)
	for _, name := range catalog {
		var n int64
		fmt.Sscan(name, &n)
		if n <= 7 {
			t.Errorf("run %d takes a number at or below the unfinished one's", n)
		}
		if !tables[n] {
			t.Errorf("run %d of the catalog has no table", n)
		}
		delete(tables, n)
	}
	if len(tables) != 0 {
		t.Errorf("run tables %v are not in the catalog; want the unfinished one dropped", tables)
	}
	checkFound(t, s.DB(), evs)
}

// column returns the values of the first column of q, as text.
func column(t testing.TB, s *audit.Sink, q string) []string {
	t.Helper()
	rows, err := s.DB().SQL().Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}
