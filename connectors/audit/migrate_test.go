package audit_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/statedb"
)

// legacyLog writes, in dir, a log of the layout before the id runs (the
// events keyed by id, with the position column), holding evs logged in
// that order.
func legacyLog(t testing.TB, dir string, evs []*core.Event) {
	t.Helper()
	db, err := statedb.Open(filepath.Join(dir, "audit.db"), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE audit_events (id TEXT PRIMARY KEY, type TEXT NOT NULL, source TEXT NOT NULL, subject TEXT, time TEXT,
			partition_key TEXT, data TEXT, data_base64 TEXT, datacontenttype TEXT, dataschema TEXT, traceparent TEXT, logged_at TEXT NOT NULL, position TEXT)`,
		`CREATE INDEX audit_events_time ON audit_events (time)`,
		`CREATE INDEX audit_events_type_time ON audit_events (type, time)`,
		`CREATE INDEX audit_events_subject_time ON audit_events (subject, time)`,
		`CREATE INDEX audit_events_logged_at ON audit_events (logged_at)`,
		`CREATE TABLE audit_replays (id TEXT PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, sink TEXT NOT NULL, filter TEXT NOT NULL, count BIGINT NOT NULL)`,
		`CREATE INDEX audit_replays_at ON audit_replays (at)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if _, err := tx.Exec(`INSERT INTO audit_events (id, type, source, subject, time, partition_key, data, datacontenttype, logged_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.Type, e.Source, e.Subject, e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z"), e.PartitionKey, string(e.Data), e.DataContentType,
			"2026-03-01T00:00:00.000000000Z", fmt.Sprintf("t/0/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A log of the layout before the id runs is searched as it is by
// audit.Open, and rewritten when the sink opens it: every event kept, in
// the order it was logged, with its position; its ids one sorted run
// that refuses them again; new events logged beside them.
func TestOpenMigratesALegacyLog(t *testing.T) {
	dir := t.TempDir()
	evs := randomEvents(300)
	legacyLog(t, dir, evs)
	ctx := context.Background()
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	checkFound(t, db, evs[:10])
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openRuns(t, dir, 64)
	if got := column(t, s, `SELECT id FROM audit_events ORDER BY seq`); len(got) != 300 || got[0] != evs[0].ID || got[299] != evs[299].ID {
		t.Fatalf("after the migration %d events, first %v; want the 300 in the order logged", len(got), got[:min(1, len(got))])
	}
	if got := column(t, s, `SELECT position FROM audit_events WHERE id = '`+evs[7].ID+`'`); len(got) != 1 || got[0] != "t/0/7" {
		t.Errorf("position of event 7 = %v, want t/0/7", got)
	}
	if got := column(t, s, `SELECT count || ' ' || upto FROM audit_id_runs`); len(got) != 1 || got[0] != "300 300" {
		t.Errorf("id runs (count upto) = %v; want one run of the 300 ids", got)
	}
	if got := column(t, s, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name`); fmt.Sprint(got) != "[audit_events_time audit_events_type_time]" {
		t.Errorf("indexes of audit_events = %v; want those of time and type, and none of id, subject or logged_at", got)
	}
	if got := column(t, s, `SELECT count(*) FROM audit_subjects`); len(got) != 1 || got[0] != "300" {
		t.Errorf("subjects indexed = %v; want the 300 events'", got)
	}
	more := randomEvents(20)
	write(t, s, deliveries(append(append([]*core.Event{}, evs...), more...)...))
	if n := count(t, s, nil); n != 320 {
		t.Fatalf("the log holds %d rows, want 320", n)
	}
	checkFound(t, s.DB(), append(evs, more...))
	if got := search(t, s, audit.Query{Subject: evs[3].Subject, Limit: 1000}); len(got) != 320/7+1 && len(got) != 320/7 {
		t.Errorf("subject %s: %d events", evs[3].Subject, len(got))
	}

	// Opened again, the log is not migrated twice.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s = openRuns(t, dir, 64)
	if n := count(t, s, nil); n != 320 {
		t.Fatalf("after a second Open the log holds %d rows, want 320", n)
	}
	write(t, s, deliveries(evs[:5]...))
	if n := count(t, s, nil); n != 320 {
		t.Fatalf("the log holds %d rows, want 320", n)
	}
}

// A log of the layout before the subjects' index (the events table
// indexed on (subject, time)) is searched by subject as it is by
// audit.Open, and indexed when the sink opens it: the subjects of the
// events its id runs cover go to audit_subjects, the index of the events
// table goes, and searches by subject find every event, before and after
// new ones come.
func TestOpenIndexesTheSubjectsOfAnOlderLog(t *testing.T) {
	dir := t.TempDir()
	s := openRuns(t, dir, 32)
	evs := randomEvents(270)
	write(t, s, deliveries(evs[:100]...))
	write(t, s, deliveries(evs[100:250]...))
	write(t, s, deliveries(evs[250:]...)) // the tail
	for _, q := range []string{
		`DROP TABLE audit_subjects`,
		`CREATE INDEX audit_events_subject_time ON audit_events (subject, time)`,
	} {
		if _, err := s.DB().SQL().Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bySubject := func(db *audit.DB, subject string) int {
		t.Helper()
		got, err := audit.Search(ctx, db, audit.Query{Subject: subject})
		if err != nil {
			t.Fatalf("search subject %s: %v", subject, err)
		}
		for _, e := range got {
			if e.Subject != subject {
				t.Fatalf("search subject %s returned %s of subject %s", subject, e.ID, e.Subject)
			}
		}
		return len(got)
	}
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		t.Fatal(err)
	}
	db, err := audit.Open(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := bySubject(db, "o-3"); n != 39 {
		t.Errorf("before the sink opens the log, subject o-3: %d events, want 39", n)
	}

	s = openRuns(t, dir, 32)
	if got := column(t, s, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name`); fmt.Sprint(got) != "[audit_events_time audit_events_type_time]" {
		t.Errorf("indexes of audit_events = %v; want those of time and type", got)
	}
	if got := column(t, s, `SELECT (SELECT count(*) FROM audit_subjects) || ' ' || (SELECT max(upto) FROM audit_id_runs)`); len(got) != 1 || got[0] != "250 250" {
		t.Errorf("subjects indexed, seq the runs cover = %v; want 250 of each", got)
	}
	for _, db := range []*audit.DB{s.DB(), db} {
		if n := bySubject(db, "o-3"); n != 39 {
			t.Errorf("subject o-3: %d events, want 39", n)
		}
	}
	more := randomEvents(320)[270:]
	write(t, s, deliveries(more...))
	if n := bySubject(s.DB(), "o-3"); n != 46 {
		t.Errorf("with 50 more events, subject o-3: %d events, want 46", n)
	}
}
