package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// openTestStore opens a stream in dir and closes it when the test ends.
func openTestStore(t *testing.T, dir string) *Stream {
	t.Helper()
	s := New()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), core.Env{Name: "stream", StateDir: dir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// publishSpaced publishes n messages on topic, one transaction each, and
// returns the time just before each: message i (offset i+1) was
// published at or after before[i] and before before[i+1].
func publishSpaced(t *testing.T, s *Stream, topic string, n int) []time.Time {
	t.Helper()
	before := make([]time.Time, n)
	for i := range n {
		time.Sleep(time.Millisecond)
		before[i] = time.Now()
		if err := s.Publisher().Publish(topic, message.NewMessage(fmt.Sprint(i), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	return before
}

// TestOffsetAtBisects checks that offsetAt, which bisects the batches
// along their offsets, finds the first message published at or after a
// time for every batch of a log, and before and after the whole log.
func TestOffsetAtBisects(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	const n = 37
	before := publishSpaced(t, s, "t", n)
	st := s.store()
	tests := []struct {
		name string
		at   time.Time
		want int64
	}{
		{name: "before the log", at: before[0].Add(-time.Hour), want: 0},
		{name: "after the log", at: time.Now().Add(time.Hour), want: n},
	}
	for i := range n {
		tests = append(tests, struct {
			name string
			at   time.Time
			want int64
		}{name: fmt.Sprintf("batch %d", i+1), at: before[i], want: int64(i)})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := st.offsetAt(ctx, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("offsetAt = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestPruneDeletesBatchesBeforeCutoff checks that pruning deletes the
// batches published before the cutoff, and only those, with no index on
// publish times.
func TestPruneDeletesBatchesBeforeCutoff(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	before := publishSpaced(t, s, "t", 10)
	st := s.store()
	tests := []struct {
		name   string
		cutoff time.Time
		left   int64 // first offset left
	}{
		{name: "nothing due", cutoff: before[0], left: 1},
		{name: "three due", cutoff: before[3], left: 4},
		{name: "again the same", cutoff: before[3], left: 4},
		{name: "all but the last", cutoff: before[9], left: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			more, err := st.pruneSome(ctx, tt.cutoff.UnixNano())
			if err != nil {
				t.Fatal(err)
			}
			if more {
				t.Errorf("pruneSome says there is more to prune")
			}
			var first sql.NullInt64
			if err := st.rdb.QueryRowContext(ctx, `SELECT MIN(first_offset) FROM batches`).Scan(&first); err != nil {
				t.Fatal(err)
			}
			if first.Int64 != tt.left {
				t.Errorf("first offset left %d, want %d", first.Int64, tt.left)
			}
		})
	}
	last, err := st.lastOffset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != 10 {
		t.Errorf("last offset %d after pruning, want 10", last)
	}
}

// TestMigrateV2DropsPublishedAtIndex builds a version 2 file (the current
// tables plus the index on published_at) and checks that opening it drops
// the index, sets version 3 and keeps the messages, the publish times and
// the offsets.
func TestMigrateV2DropsPublishedAtIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	before := publishSpaced(t, s, "t", 5)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dir+"/stream.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`CREATE INDEX batches_published_at ON batches (published_at)`, `PRAGMA user_version = 2`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s = openTestStore(t, dir)
	var version, indexes int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'batches_published_at'`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if version != schemaVersion || indexes != 0 {
		t.Errorf("after opening a version 2 file: user_version %d, %d indexes on published_at; want %d, 0", version, indexes, schemaVersion)
	}
	st := s.store()
	got, err := st.offsetAt(ctx, before[2])
	if err != nil {
		t.Fatal(err)
	}
	if got != 2 {
		t.Errorf("offsetAt the third message = %d, want 2", got)
	}
	if err := s.Publisher().Publish("t", message.NewMessage("next", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	last, err := st.lastOffset(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last != 6 {
		t.Errorf("last offset %d after the migration and one more message, want 6", last)
	}
}

// TestNewFilePageSize checks that a new stream file has 4 KiB pages: each
// transaction writes every page it touches whole, so small pages keep a
// transaction of a few events to a few pages' bytes.
func TestNewFilePageSize(t *testing.T) {
	dir := t.TempDir()
	openTestStore(t, dir)
	db, err := sql.Open("sqlite", dir+"/stream.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	if size != 4096 {
		t.Errorf("page size %d, want 4096", size)
	}
}
