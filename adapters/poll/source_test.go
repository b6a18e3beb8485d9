package poll_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// table is an in-memory table with an updated-at column, standing in for a
// database. It can hide rows to play transactions that commit late.
type table struct {
	mu     sync.Mutex
	rows   map[int64]row
	hidden map[int64]bool
	base   time.Time
	calls  int
}

type row struct {
	id  int64
	ts  time.Time
	val string
}

func newTable() *table {
	return &table{rows: map[int64]row{}, hidden: map[int64]bool{}, base: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}
}

// put upserts a row with the given timestamp offset in seconds.
func (tb *table) put(id int64, sec int, val string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.rows[id] = row{id: id, ts: tb.base.Add(time.Duration(sec) * time.Second), val: val}
}

func (tb *table) del(id int64) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	delete(tb.rows, id)
}

func (tb *table) hide(id int64, hidden bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.hidden[id] = hidden
}

func (tb *table) snapshot() []row {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.calls++
	var out []row
	for _, r := range tb.rows {
		if !tb.hidden[r.id] {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ts.Equal(out[j].ts) {
			return out[i].ts.Before(out[j].ts)
		}
		return out[i].id < out[j].id
	})
	return out
}

// fetcher pages through the table, three records a page.
func (tb *table) fetcher() poll.Fetcher {
	return poll.FetcherFunc(func(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
		var page []poll.Record
		for _, r := range tb.snapshot() {
			if c, ok := req.Cursor.(time.Time); ok && r.ts.Before(c) {
				continue
			}
			page = append(page, poll.Record{
				Key:    map[string]any{"id": r.id},
				Data:   map[string]any{"id": r.id, "val": r.val, "updated_at": r.ts},
				Cursor: r.ts,
			})
			if len(page) == 3 {
				if err := emit(page); err != nil {
					return err
				}
				page = nil
			}
		}
		if len(page) > 0 {
			return emit(page)
		}
		return nil
	})
}

func testEnv(t testing.TB) core.Env {
	return core.Env{Name: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: t.TempDir()}
}

func newSource(t conformance.TB, cfg poll.Config) *poll.Source {
	t.Helper()
	if cfg.Schedule == "" {
		cfg.Schedule = "@every 5ms"
	}
	s, err := poll.NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, s *poll.Source, env core.Env, from core.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Open(ctx, env, from); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

// readUntil reads until cond holds on everything read so far.
func readUntil(t testing.TB, s *poll.Source, cond func([]core.Change) bool) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []core.Change
	for !cond(got) {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d changes: %v", len(got), err)
		}
		got = append(got, b...)
	}
	return got
}

// settle reads for a while and returns whatever arrived; the source runs
// several times meanwhile.
func settle(t testing.TB, s *poll.Source, d time.Duration) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []core.Change
	for {
		b, err := s.Read(ctx)
		if err != nil {
			return got
		}
		got = append(got, b...)
	}
}

func ack(t testing.TB, s *poll.Source, ch core.Change) {
	t.Helper()
	if err := s.Ack(context.Background(), ch.Position); err != nil {
		t.Fatal(err)
	}
}

func vals(chs []core.Change) []string {
	var out []string
	for _, ch := range chs {
		if ch.Op == core.OpDelete {
			out = append(out, fmt.Sprintf("delete:%v", ch.Key["id"]))
			continue
		}
		out = append(out, fmt.Sprintf("%s:%v", ch.Op, ch.After["val"]))
	}
	return out
}

func TestCursorSameTimestampAndLateCommit(t *testing.T) {
	tb := newTable()
	tb.put(1, 1, "a")
	tb.put(2, 2, "b")
	tb.put(3, 2, "c")
	tb.put(4, 3, "d")
	tb.hide(4, true) // committing late, with an earlier timestamp than row 5
	tb.put(5, 4, "e")
	s := newSource(t, poll.Config{Mode: poll.ModeCursor, Cursor: poll.CursorTime, LookBack: 5 * time.Second, Fetcher: tb.fetcher()})
	open(t, s, testEnv(t), core.Position{})
	got := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 4 })
	if want := []string{"update:a", "update:b", "update:c", "update:e"}; !slices.Equal(vals(got), want) {
		t.Fatalf("first changes %v, want %v", vals(got), want)
	}
	// A row sharing the watermark's timestamp, and the late row, appear.
	tb.put(6, 4, "f")
	tb.hide(4, false)
	more := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 2 })
	more = append(more, settle(t, s, 50*time.Millisecond)...)
	if want := []string{"update:d", "update:f"}; !slices.Equal(vals(more), want) {
		t.Fatalf("later changes %v, want %v (each once)", vals(more), want)
	}
	// An update of an already read row is a new change.
	tb.put(2, 5, "b2")
	upd := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 1 })
	if want := []string{"update:b2"}; !slices.Equal(vals(upd), want) {
		t.Fatalf("update %v, want %v", vals(upd), want)
	}
}

func TestCursorResumeKeepsPositions(t *testing.T) {
	tb := newTable()
	for i := range 6 {
		tb.put(int64(i+1), i/2, fmt.Sprint("v", i+1))
	}
	env := testEnv(t)
	cfg := poll.Config{Mode: poll.ModeCursor, Cursor: poll.CursorTime, LookBack: time.Minute, Fetcher: tb.fetcher()}
	s := newSource(t, cfg)
	open(t, s, env, core.Position{})
	first := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 6 })
	ack(t, s, first[2])
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := newSource(t, cfg)
	open(t, s2, env, first[2].Position)
	second := readUntil(t, s2, func(c []core.Change) bool { return len(c) >= 3 })
	second = append(second, settle(t, s2, 50*time.Millisecond)...)
	if len(second) != 3 {
		t.Fatalf("read %d changes after resume, want the 3 not acknowledged: %v", len(second), vals(second))
	}
	for i, ch := range second {
		if string(ch.Position.Data) != string(first[3+i].Position.Data) {
			t.Fatalf("change %d read again at %s, first read at %s: positions must be stable", i, ch.Position, first[3+i].Position)
		}
	}
}

// TestCursorRewindToEarlierCheckpoint: every row is read and acknowledged,
// then the source opens again from the checkpoint of the second row (an
// operator set it back): the rows after it come again, at the positions
// they were first read at, and those up to it do not.
func TestCursorRewindToEarlierCheckpoint(t *testing.T) {
	tb := newTable()
	for i := range 6 {
		tb.put(int64(i+1), i, fmt.Sprint("v", i+1))
	}
	env := testEnv(t)
	cfg := poll.Config{Mode: poll.ModeCursor, Cursor: poll.CursorTime, LookBack: time.Minute, Fetcher: tb.fetcher()}
	s := newSource(t, cfg)
	open(t, s, env, core.Position{})
	first := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 6 })
	ack(t, s, first[5])
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := newSource(t, cfg)
	open(t, s2, env, first[1].Position)
	again := readUntil(t, s2, func(c []core.Change) bool { return len(c) >= 4 })
	again = append(again, settle(t, s2, 50*time.Millisecond)...)
	if want := []string{"update:v3", "update:v4", "update:v5", "update:v6"}; !slices.Equal(vals(again), want) {
		t.Fatalf("read %v after the rewind, want %v", vals(again), want)
	}
	for i, ch := range again {
		if string(ch.Position.Data) != string(first[2+i].Position.Data) {
			t.Errorf("row %d read again at %s, first read at %s: positions must be stable", 3+i, ch.Position, first[2+i].Position)
		}
	}
}

func TestSnapshotDiff(t *testing.T) {
	tb := newTable()
	for i := range 5 {
		tb.put(int64(i+1), 0, fmt.Sprint("v", i+1))
	}
	env := testEnv(t)
	cfg := poll.Config{Mode: poll.ModeSnapshot, Fetcher: tb.fetcher()}
	s := newSource(t, cfg)
	open(t, s, env, core.Position{})
	first := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 5 })
	for _, ch := range first {
		if ch.Op != core.OpCreate {
			t.Fatalf("first run emitted %s, want create", ch.Op)
		}
	}
	ack(t, s, first[len(first)-1])
	if extra := settle(t, s, 40*time.Millisecond); len(extra) > 0 {
		t.Fatalf("unchanged set emitted %v", vals(extra))
	}
	tb.put(2, 1, "v2b")
	tb.del(4)
	tb.put(9, 1, "v9")
	got := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 3 })
	sort.Strings(sortable(got))
	want := map[string]bool{"update:v2b": true, "delete:4": true, "create:v9": true}
	for _, v := range vals(got) {
		if !want[v] {
			t.Fatalf("diff emitted %v, want %v", vals(got), want)
		}
		delete(want, v)
	}
	// Not acknowledged: after a restart the same changes come again, with
	// the same positions.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := newSource(t, cfg)
	open(t, s2, env, first[len(first)-1].Position)
	again := readUntil(t, s2, func(c []core.Change) bool { return len(c) >= 3 })
	pos := map[string]bool{}
	for _, ch := range got {
		pos[string(ch.Position.Data)] = true
	}
	for _, ch := range again {
		if !pos[string(ch.Position.Data)] {
			t.Fatalf("replayed change at %s was not read before the restart", ch.Position)
		}
	}
	ack(t, s2, again[len(again)-1])
	if extra := settle(t, s2, 40*time.Millisecond); len(extra) > 0 {
		t.Fatalf("after acknowledgement the diff emitted %v", vals(extra))
	}
	// A deleted key created again is a create with a new position.
	tb.put(4, 2, "v4")
	re := readUntil(t, s2, func(c []core.Change) bool { return len(c) >= 1 })
	if re[0].Op != core.OpCreate || pos[string(re[0].Position.Data)] {
		t.Fatalf("re-created key: %s at %s", re[0].Op, re[0].Position)
	}
}

func sortable(chs []core.Change) []string { return vals(chs) }

func TestSnapshotDeleteOfUnacknowledgedCreate(t *testing.T) {
	tb := newTable()
	tb.put(1, 0, "a")
	s := newSource(t, poll.Config{Mode: poll.ModeSnapshot, Fetcher: tb.fetcher()})
	open(t, s, testEnv(t), core.Position{})
	first := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 1 })
	tb.del(1)
	// Nothing acknowledged yet: the delete must still be seen.
	got := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 1 })
	if want := []string{"delete:1"}; !slices.Equal(vals(got), want) {
		t.Fatalf("got %v after %v, want %v", vals(got), vals(first), want)
	}
	ack(t, s, got[0])
	if extra := settle(t, s, 40*time.Millisecond); len(extra) > 0 {
		t.Fatalf("emitted %v after the delete", vals(extra))
	}
}

func TestCatchUp(t *testing.T) {
	tests := []struct {
		name    string
		policy  string
		wantMin int
		wantMax int
	}{
		{name: "one", policy: poll.CatchUpOne, wantMin: 1, wantMax: 1},
		{name: "all", policy: poll.CatchUpAll, wantMin: 5, wantMax: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var runs []time.Time
			clock := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
			now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
			f := poll.FetcherFunc(func(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
				mu.Lock()
				runs = append(runs, req.RunTime)
				mu.Unlock()
				return emit([]poll.Record{{ID: req.RunTime.Format(time.RFC3339Nano)}})
			})
			env := testEnv(t)
			cfg := poll.Config{Schedule: "0 * * * * *", CatchUp: tt.policy, Mode: poll.ModeEach, Fetcher: f, Now: now}
			s := newSource(t, cfg)
			open(t, s, env, core.Position{})
			ch := readUntil(t, s, func(c []core.Change) bool { return len(c) >= 1 })
			ack(t, s, ch[0])
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Down for five minutes and a half.
			mu.Lock()
			clock = clock.Add(5*time.Minute + 30*time.Second)
			runs = nil
			mu.Unlock()
			s2 := newSource(t, cfg)
			open(t, s2, env, ch[0].Position)
			got := readUntil(t, s2, func(c []core.Change) bool { return len(c) >= tt.wantMin })
			got = append(got, settle(t, s2, 50*time.Millisecond)...)
			if len(got) < tt.wantMin || len(got) > tt.wantMax {
				t.Fatalf("%d runs after the downtime, want %d to %d: %v", len(got), tt.wantMin, tt.wantMax, runs)
			}
			mu.Lock()
			last := runs[len(runs)-1]
			mu.Unlock()
			if want := time.Date(2024, 5, 1, 10, 5, 0, 0, time.UTC); !last.Equal(want) {
				t.Fatalf("last catch-up run at %s, want %s", last, want)
			}
		})
	}
}

func TestScheduleParse(t *testing.T) {
	tests := []struct {
		name, spec, zone string
		from, want       time.Time
		wantErr          bool
	}{
		{name: "every", spec: "@every 90s", from: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(2024, 1, 1, 0, 1, 30, 0, time.UTC)},
		{name: "seconds field", spec: "*/15 * * * * *", from: time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC), want: time.Date(2024, 1, 1, 0, 0, 15, 0, time.UTC)},
		{name: "five fields", spec: "30 2 * * *", from: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(2024, 1, 1, 2, 30, 0, 0, time.UTC)},
		{name: "zone", spec: "0 0 9 * * *", zone: "Europe/Paris", from: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(2024, 1, 1, 8, 0, 0, 0, time.UTC)},
		{name: "cron tz prefix", spec: "CRON_TZ=America/New_York 0 0 9 * * *", from: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(2024, 1, 1, 14, 0, 0, 0, time.UTC)},
		{name: "bad", spec: "every minute", wantErr: true},
		{name: "bad zone", spec: "@hourly", zone: "Mars/Olympus", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := poll.ParseSchedule(tt.spec, tt.zone)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(tt.from); !got.Equal(tt.want) {
				t.Fatalf("Next(%s) = %s, want %s", tt.from, got, tt.want)
			}
		})
	}
}

// tables gives each conformance check its own table, keyed by test name.
type tables struct {
	mu sync.Mutex
	m  map[string]*table
	n  map[string]int
}

func (ts *tables) get(t conformance.TB) *table {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m, ts.n = map[string]*table{}, map[string]int{}
	}
	tb, ok := ts.m[t.Name()]
	if !ok {
		tb = newTable()
		ts.m[t.Name()] = tb
	}
	return tb
}

// produce adds k rows, three per timestamp.
func (ts *tables) produce(t conformance.TB, k int) {
	tb := ts.get(t)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for range k {
		ts.n[t.Name()]++
		n := ts.n[t.Name()]
		tb.put(int64(n), n/3, fmt.Sprint("v", n))
	}
}

func TestConformanceCursor(t *testing.T) {
	var ts tables
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			return wrap{newSource(t, poll.Config{Mode: poll.ModeCursor, Cursor: poll.CursorTime, LookBack: time.Hour, Fetcher: ts.get(t).fetcher()})}
		},
		Produce:      ts.produce,
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}

func TestConformanceSnapshot(t *testing.T) {
	var ts tables
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			return wrap{newSource(t, poll.Config{Mode: poll.ModeSnapshot, Fetcher: ts.get(t).fetcher()})}
		},
		Produce:      ts.produce,
		Capabilities: conformance.Capabilities{Resume: true, Ordered: false, OrderedReason: "a snapshot has no order between keys"},
	})
}

// wrap gives a poll.Source the Configure method of core.Source.
type wrap struct{ *poll.Source }

func (wrap) Configure(core.Config) error { return nil }

// TestSnapshotDiffManyKeys diffs thousands of keys over several runs, read
// in key order, reversed and shuffled, with a range of keys deleted and
// created again, and checks each run's changes against a model.
func TestSnapshotDiffManyKeys(t *testing.T) {
	var mu sync.Mutex
	cur := map[int64]string{}
	var order func([]int64)
	fetch := poll.FetcherFunc(func(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
		mu.Lock()
		ids := slices.Sorted(maps.Keys(cur))
		if order != nil {
			order(ids)
		}
		recs := make([]poll.Record, len(ids))
		for i, id := range ids {
			recs[i] = poll.Record{Key: map[string]any{"id": id}, Data: map[string]any{"id": id, "val": cur[id]}}
		}
		mu.Unlock()
		for len(recs) > 0 {
			n := min(len(recs), 500)
			if err := emit(recs[:n]); err != nil {
				return err
			}
			recs = recs[n:]
		}
		return nil
	})
	s := newSource(t, poll.Config{Mode: poll.ModeSnapshot, Fetcher: fetch})
	open(t, s, testEnv(t), core.Position{})
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(pct int, f func(id int64)) {
		for _, id := range slices.Sorted(maps.Keys(cur)) {
			if rng.IntN(100) < pct {
				f(id)
			}
		}
	}
	acked := map[int64]string{}
	steps := []struct {
		name   string
		mutate func(round int)
		order  func([]int64)
	}{
		{"first run", func(int) {
			for id := int64(1); id <= 6000; id++ {
				cur[id] = "a"
			}
		}, nil},
		{"updates, deletes and creates in key order", func(round int) {
			pick(5, func(id int64) { cur[id] = fmt.Sprint("u", round) })
			pick(5, func(id int64) { delete(cur, id) })
			for id := int64(6001); id <= 6300; id++ {
				cur[id] = "n"
			}
		}, nil},
		{"a range deleted", func(int) {
			for id := int64(1000); id < 4000; id++ {
				delete(cur, id)
			}
		}, nil},
		{"the range back, reversed", func(int) {
			for id := int64(1000); id < 4000; id++ {
				cur[id] = "b"
			}
		}, func(ids []int64) { slices.Reverse(ids) }},
		{"shuffled", func(round int) {
			pick(10, func(id int64) { cur[id] = fmt.Sprint("u", round) })
			pick(3, func(id int64) { delete(cur, id) })
		}, func(ids []int64) { rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] }) }},
		{"back in key order", func(round int) {
			pick(2, func(id int64) { cur[id] = fmt.Sprint("u", round) })
			cur[-1] = "first"
		}, nil},
	}
	for round, step := range steps {
		mu.Lock()
		step.mutate(round)
		order = step.order
		want := map[string]string{}
		for id, v := range cur {
			if old, ok := acked[id]; !ok {
				want[fmt.Sprint(id)] = "create:" + v
			} else if old != v {
				want[fmt.Sprint(id)] = "update:" + v
			}
		}
		for id := range acked {
			if _, ok := cur[id]; !ok {
				want[fmt.Sprint(id)] = "delete"
			}
		}
		acked = maps.Clone(cur)
		mu.Unlock()
		got := readUntil(t, s, func(c []core.Change) bool { return len(c) >= len(want) })
		seen := map[string]string{}
		for _, ch := range got {
			id, v := fmt.Sprint(ch.Key["id"]), string(ch.Op)
			if ch.Op != core.OpDelete {
				v += ":" + fmt.Sprint(ch.After["val"])
			}
			if prev, dup := seen[id]; dup {
				t.Fatalf("%s: key %s changed twice: %s, %s", step.name, id, prev, v)
			}
			if want[id] != v {
				t.Fatalf("%s: key %s: got %s, want %q", step.name, id, v, want[id])
			}
			seen[id] = v
		}
		ack(t, s, got[len(got)-1])
	}
}
