package cdc_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

func TestPositionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		pos  cdc.Position
		data string
	}{
		{"stream", cdc.Position{Commit: "0/16B3748", Index: 3}, `{"lsn":"0/16B3748","i":3}`},
		{"stream first", cdc.Position{Commit: "1A/0", Index: 0}, `{"lsn":"1A/0","i":0}`},
		{"snapshot", cdc.Position{Snapshot: &cdc.SnapshotPosition{At: "0/10", Table: "public.orders", Key: []string{"42", "a\"b"}}}, `{"snap":"0/10","t":"public.orders","k":["42","a\"b"]}`},
		{"parallel snapshot", cdc.Position{Snapshot: &cdc.SnapshotPosition{
			At: "0/10", Table: "public.b", Key: []string{"7"}, Started: "public.d",
			Others: map[string][]string{"public.a": {"42"}, "public.d": nil},
		}}, `{"snap":"0/10","t":"public.b","k":["7"],"hi":"public.d","p":{"public.a":["42"],"public.d":null}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.pos.Encode()
			if enc.Version != cdc.PositionVersion || string(enc.Data) != tc.data {
				t.Fatalf("Encode = v%d %s, want %s", enc.Version, enc.Data, tc.data)
			}
			got, err := cdc.DecodePosition(enc)
			if err != nil || !reflect.DeepEqual(got, tc.pos) {
				t.Fatalf("DecodePosition = %+v, %v", got, err)
			}
		})
	}
}

// TestAppendStreamPosition checks that positions appended to a shared
// buffer are StreamPosition's, and that each is capped: appending to one
// does not write over the next.
func TestAppendStreamPosition(t *testing.T) {
	buf := make([]byte, 0, 256)
	var got []core.Position
	for i, commit := range []string{"0-1-42", "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", "file:bin.000002/4"} {
		p := cdc.AppendStreamPosition(buf, commit, i*1000)
		buf = buf[:len(buf)+len(p.Data)]
		got = append(got, p)
		if want := cdc.StreamPosition(commit, i*1000); p.Version != want.Version || string(p.Data) != string(want.Data) {
			t.Fatalf("AppendStreamPosition(%q, %d) = v%d %s, want v%d %s", commit, i*1000, p.Version, p.Data, want.Version, want.Data)
		}
		if cap(p.Data) != len(p.Data) {
			t.Fatalf("AppendStreamPosition(%q): capacity %d beyond its %d bytes", commit, cap(p.Data), len(p.Data))
		}
	}
	_ = append(got[0].Data, "xxxxxxxx"...)
	if want := cdc.StreamPosition("gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10", 1000); string(got[1].Data) != string(want.Data) {
		t.Fatalf("appending to the first position changed the second: %s", got[1].Data)
	}
}

func TestDecodeBadPosition(t *testing.T) {
	for _, p := range []core.Position{
		{Version: 2, Data: []byte(`{"lsn":"0/1","i":0}`)},
		{Version: 1, Data: []byte(`not json`)},
		{Version: 1, Data: []byte(`{}`)},
		{Version: 1, Data: []byte(`{"snap":"0/1"}`)},
		{Version: 1, Data: []byte(`{"snap":"0/1","t":"public.b","k":["1"],"hi":"public.a"}`)},
	} {
		if _, err := cdc.DecodePosition(p); !errors.Is(err, cdc.ErrBadPosition) {
			t.Errorf("DecodePosition(%s) = %v", p, err)
		}
	}
}

// TestDecodeSingleTablePositions: checkpoints written by snapshots that
// read one table at a time (format version 1 without "hi" and "p") still
// resume: tables before t are done, t resumes after k, the rest start.
func TestDecodeSingleTablePositions(t *testing.T) {
	pos := core.Position{Version: 1, Data: []byte(`{"snap":"0/16B3700","t":"public.orders","k":["42","a\u003cb"]}`)}
	got, err := cdc.DecodePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	want := &cdc.SnapshotPosition{At: "0/16B3700", Table: "public.orders", Key: []string{"42", "a<b"}}
	if !reflect.DeepEqual(got.Snapshot, want) {
		t.Fatalf("DecodePosition = %+v", got.Snapshot)
	}
	if got.Snapshot.StartedThrough() != "public.orders" {
		t.Fatalf("StartedThrough = %q", got.Snapshot.StartedThrough())
	}
	if enc := got.Encode(); string(enc.Data) != string(pos.Data) {
		t.Fatalf("encoded again as %s", enc.Data)
	}
	steps := cdc.NewPlan([]string{"public.customers", "public.orders", "public.items", "public.zones"}).Remaining(got.Snapshot)
	wantSteps := []cdc.Step{{Table: "public.orders", After: []string{"42", "a<b"}}, {Table: "public.zones"}}
	if !reflect.DeepEqual(steps, wantSteps) {
		t.Fatalf("Remaining = %+v", steps)
	}
}

// TestChunkEncoderMatchesJSON checks the hand-written encoding against
// encoding/json: the position is the whole SnapshotPosition, its identity
// the single-table form (At, Table, Key) whatever the other tables' progress.
func TestChunkEncoderMatchesJSON(t *testing.T) {
	tests := []struct {
		name string
		sp   cdc.SnapshotPosition
		keys [][]string
	}{
		{"single table", cdc.SnapshotPosition{At: "0/10", Table: "public.a"}, [][]string{{"1"}, {"2", "x"}}},
		{"escapes", cdc.SnapshotPosition{At: "0/10", Table: `public."odd<&>"`}, [][]string{{"a\"b", "c\\d", "<tag>", "e&f", "\n", "é", "\u2028"}, {}}},
		{"nil key", cdc.SnapshotPosition{At: "0/10", Table: "public.a"}, [][]string{nil}},
		{"parallel", cdc.SnapshotPosition{At: "0/10", Table: "public.b", Started: "public.c", Others: map[string][]string{"public.c": nil, "public.a": {"9", "q\""}}}, [][]string{{"1"}}},
		{"others only", cdc.SnapshotPosition{At: "0/10", Table: "public.b", Others: map[string][]string{"public.a": {"9"}}}, [][]string{{"1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := cdc.NewChunkEncoder(tc.sp)
			for _, k := range tc.keys {
				sp := tc.sp
				sp.Key = k
				wantData, _ := json.Marshal(sp)
				wantID, _ := json.Marshal(cdc.SnapshotPosition{At: sp.At, Table: sp.Table, Key: sp.Key})
				got := enc.Encode(k)
				if got.Version != cdc.PositionVersion || string(got.Data) != string(wantData) {
					t.Fatalf("ChunkEncoder = %s, json = %s", got.Data, wantData)
				}
				if id := got.Identity(); string(id) != string(wantID) {
					t.Fatalf("identity = %s, want %s", id, wantID)
				}
				if plain := (cdc.Position{Snapshot: &sp}).Encode(); string(plain.Data) != string(got.Data) || string(plain.Identity()) != string(got.Identity()) {
					t.Fatalf("Encode = %s (id %s), ChunkEncoder = %s (id %s)", plain.Data, plain.Identity(), got.Data, got.Identity())
				}
				if _, err := cdc.DecodePosition(got); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name                            string
		mode                            cdc.SnapshotMode
		hasCheckpoint, inSnapshot, kept bool
		want                            bool
		wantErr                         error
	}{
		{"initial, fresh", cdc.SnapshotInitial, false, false, false, true, nil},
		{"never, fresh", cdc.SnapshotNever, false, false, false, false, nil},
		{"initial, streaming", cdc.SnapshotInitial, true, false, true, false, nil},
		{"initial, mid-snapshot", cdc.SnapshotInitial, true, true, true, true, nil},
		{"initial, log gone", cdc.SnapshotInitial, true, false, false, false, cdc.ErrLogGone},
		{"never, log gone", cdc.SnapshotNever, true, false, false, false, cdc.ErrLogGone},
		{"when needed, log gone", cdc.SnapshotWhenNeeded, true, false, false, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cdc.Decide(tc.mode, tc.hasCheckpoint, tc.inSnapshot, tc.kept)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Decide = %v, %v", got, err)
			}
		})
	}
}

func TestPlanRemaining(t *testing.T) {
	pl := cdc.NewPlan([]string{"public.b", "public.a", "public.c", "public.a"})
	if !reflect.DeepEqual(pl.Tables, []string{"public.a", "public.b", "public.c"}) {
		t.Fatalf("plan %v", pl.Tables)
	}
	got := pl.Remaining(&cdc.SnapshotPosition{Table: "public.b", Key: []string{"7"}})
	want := []cdc.Step{{Table: "public.b", After: []string{"7"}}, {Table: "public.c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Remaining = %+v", got)
	}
	if got := pl.Remaining(nil); len(got) != 3 || got[0].After != nil {
		t.Fatalf("Remaining(nil) = %+v", got)
	}
	got = pl.Remaining(&cdc.SnapshotPosition{Table: "public.a", Key: []string{"3"}, Started: "public.b", Others: map[string][]string{"public.b": {}, "public.gone": {"1"}}})
	want = []cdc.Step{{Table: "public.a", After: []string{"3"}}, {Table: "public.b"}, {Table: "public.c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Remaining of a parallel position = %+v", got)
	}
}

// TestProgressResumesEveryTable hands out chunks of several tables in
// random interleavings, as parallel readers would, and checks that the
// position of every change resumes each table exactly after the last key
// handed out before or with it: nothing lost, nothing read twice, and
// tables started but with nothing handed out yet read from their start.
func TestProgressResumesEveryTable(t *testing.T) {
	const at = "0/10"
	plan := cdc.NewPlan([]string{"s.a", "s.b", "s.c", "s.d", "s.e", "s.f"})
	rows := map[string]int{"s.a": 7, "s.b": 0, "s.c": 3, "s.d": 12, "s.e": 1, "s.f": 5}
	const chunk, parallel = 2, 3
	key := func(i int) []string { return []string{fmt.Sprintf("%03d", i)} }
	for seed := range 200 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		// Run the snapshot from the start, then resume it from a random
		// change's position, and from there again, three runs in all.
		var from *cdc.SnapshotPosition
		done := map[string]int{} // rows of each table handed out before from
		for run := range 3 {
			steps := plan.Remaining(from)
			for _, st := range steps {
				next := 0
				if st.After != nil {
					fmt.Sscanf(st.After[0], "%d", &next)
				}
				if next != done[st.Table] {
					t.Fatalf("seed %d run %d: %s resumes after row %d, %d were handed out", seed, run, st.Table, next, done[st.Table])
				}
			}
			for _, tb := range plan.Tables {
				if done[tb] < rows[tb] && !slices.ContainsFunc(steps, func(st cdc.Step) bool { return st.Table == tb }) {
					t.Fatalf("seed %d run %d: %s is skipped after %d of %d rows", seed, run, tb, done[tb], rows[tb])
				}
			}
			p := cdc.NewProgress(at, steps, from)
			// Readers take steps in order, each reads its table in chunks;
			// a chunk of any active reader may come next.
			type reader struct {
				table string
				next  int
			}
			var active []*reader
			queue := slices.Clone(steps)
			var handed []core.Position
			counts := map[string]int{}
			for len(queue) > 0 || len(active) > 0 {
				for len(active) < parallel && len(queue) > 0 {
					st := queue[0]
					queue = queue[1:]
					r := &reader{table: st.Table}
					if st.After != nil {
						fmt.Sscanf(st.After[0], "%d", &r.next)
					}
					active = append(active, r)
				}
				i := rng.IntN(len(active))
				r := active[i]
				n := min(chunk, rows[r.table]-r.next)
				if n > 0 {
					enc := p.Chunk(r.table)
					for range n {
						r.next++
						handed = append(handed, enc.Encode(key(r.next)))
					}
					p.Read(r.table, key(r.next))
				}
				if n < chunk {
					p.Finish(r.table)
					active = slices.Delete(active, i, i+1)
				}
				counts[r.table] = r.next
			}
			for tb, n := range rows {
				if counts[tb] != n && done[tb] != n {
					t.Fatalf("seed %d run %d: %s read to %d of %d", seed, run, tb, counts[tb], n)
				}
			}
			if len(handed) == 0 {
				break
			}
			// Crash after a random change: what was handed out up to it
			// counts as done.
			cut := rng.IntN(len(handed))
			dp, err := cdc.DecodePosition(handed[cut])
			if err != nil {
				t.Fatal(err)
			}
			if len(dp.Snapshot.Others) >= parallel {
				t.Fatalf("seed %d: position %s names %d other tables with %d readers", seed, handed[cut], len(dp.Snapshot.Others), parallel)
			}
			for _, pos := range handed[:cut+1] {
				d, _ := cdc.DecodePosition(pos)
				var n int
				fmt.Sscanf(d.Snapshot.Key[0], "%d", &n)
				done[d.Snapshot.Table] = n
			}
			from = dp.Snapshot
		}
	}
}
