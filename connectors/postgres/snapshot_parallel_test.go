package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	connector "github.com/tributary/tributary/connectors/postgres"
	"github.com/tributary/tributary/core"
)

func parallelConfig(d *db, chunk, parallel int, tables ...string) map[string]any {
	cfg := d.config(tables...)
	cfg["snapshot"] = map[string]any{"mode": "initial", "chunk_size": chunk, "parallel": parallel}
	return cfg
}

// idsOf returns, per table, the ids of the snapshot rows among chs, in the
// order read, and fails on a change that is not a snapshot read.
func idsOf(t *testing.T, chs []core.Change) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for i, ch := range chs {
		if ch.Op != core.OpRead {
			t.Fatalf("change %d: %s %v of %s, want a snapshot read", i, ch.Op, ch.Key, ch.Source.Table)
		}
		out[ch.Source.Table] = append(out[ch.Source.Table], ch.Key["id"].(int64))
	}
	return out
}

// snapshotPos decodes a snapshot change's position.
func snapshotPos(t *testing.T, ch core.Change) *cdc.SnapshotPosition {
	t.Helper()
	p, err := cdc.DecodePosition(ch.Position)
	if err != nil || !p.IsSnapshot() {
		t.Fatalf("position %s: %v, want a snapshot position", ch.Position, err)
	}
	return p.Snapshot
}

// TestParallelSnapshot: several tables read at once, by fewer workers than
// tables, hand out every row exactly once, each table in key order, all as
// of the slot's consistent point (every worker imported the exported
// snapshot: writes committed right after Open are not in it but arrive by
// the stream); positions are unique and name at most the other tables
// being read.
func TestParallelSnapshot(t *testing.T) {
	d := newDB(t)
	names := []string{"a", "b", "c", "d", "e"}
	rows := map[string]int{"a": 61, "b": 40, "c": 0, "d": 33, "e": 7}
	for _, n := range names {
		tb := d.table(n)
		d.exec(t,
			sprintf(`create table %s (id int primary key, v text)`, tb),
			sprintf(`insert into %s select g, 'v' || g from generate_series(1, %d) g`, tb, rows[n]))
	}
	const parallel = 3
	src := openSource(t, parallelConfig(d, 6, parallel, names...), core.Position{})
	// Written after the slot's consistent point: not in the snapshot.
	for _, n := range []string{"a", "b", "d", "e"} {
		d.exec(t, sprintf(`update %s set v = 'late' where id = 1`, d.table(n)))
	}
	total := 61 + 40 + 33 + 7
	got := readN(t, src, total+4)
	snap, stream := got[:total], got[total:]
	ids := idsOf(t, snap)
	for _, n := range names {
		want := make([]int64, rows[n])
		for i := range want {
			want[i] = int64(i + 1)
		}
		if g := ids[d.table(n)]; !slices.Equal(g, want) {
			t.Errorf("table %s: ids %v, want 1..%d once each in key order", n, g, rows[n])
		}
	}
	seen := map[string]bool{}
	for i, ch := range snap {
		if ch.After["v"] == "late" {
			t.Errorf("change %d: the snapshot saw a write committed after the slot's consistent point: %v", i, ch.After)
		}
		if seen[string(ch.Position.Data)] {
			t.Fatalf("change %d: position %s handed out twice", i, ch.Position)
		}
		seen[string(ch.Position.Data)] = true
		sp := snapshotPos(t, ch)
		if sp.Table != "public."+ch.Source.Table || len(sp.Others) >= parallel {
			t.Fatalf("change %d of %s: position %s", i, ch.Source.Table, ch.Position)
		}
	}
	for i, ch := range stream {
		if ch.Op != core.OpUpdate || ch.After["v"] != "late" {
			t.Fatalf("stream change %d: %s %v", i, ch.Op, ch.After)
		}
	}
	if !interleaved(snap) {
		t.Logf("the tables' chunks happened not to interleave in this run")
	}
	// Acknowledging the whole snapshot and the stream lets the slot move.
	before := d.confirmedFlush(t)
	ack(t, src, snap[len(snap)-1].Position)
	ack(t, src, stream[len(stream)-1].Position)
	waitFor(t, "the slot to confirm after the snapshot", func() bool { return d.confirmedFlush(t) > before })
}

// interleaved reports whether a table's rows came after another's and
// before the rest of its own.
func interleaved(chs []core.Change) bool {
	done := map[string]bool{}
	for i, ch := range chs {
		if i > 0 && chs[i-1].Source.Table != ch.Source.Table {
			if done[ch.Source.Table] {
				return true
			}
			done[chs[i-1].Source.Table] = true
		}
	}
	return false
}

// TestParallelSnapshotResumesAfterCrash: a crash in the middle of a
// snapshot whose tables' chunks interleave resumes each table after its own
// last acknowledged row: nothing acknowledged is read again, nothing is
// lost, and no started table starts over. It crashes twice, the second
// time in the resumed run; changes made while down arrive by the stream.
func TestParallelSnapshotResumesAfterCrash(t *testing.T) {
	d := newDB(t)
	names := []string{"a", "b", "c", "d"}
	const perTable = 40
	for _, n := range names {
		tb := d.table(n)
		d.exec(t,
			sprintf(`create table %s (id int primary key, v text)`, tb),
			sprintf(`insert into %s select g, 'v' from generate_series(1, %d) g`, tb, perTable))
	}
	cfg := parallelConfig(d, 5, 4, names...)
	acked := map[string][]int64{} // rows acknowledged, per table, over the runs
	var checkpoint core.Position
	identity := map[string]string{} // table/id -> position identity, first read
	remaining := perTable * len(names)
	for run := range 3 {
		src := openSource(t, cfg, checkpoint)
		var got []core.Change
		if run < 2 {
			got = readN(t, src, remaining)
		} else {
			// An update of an acknowledged row while down: the snapshot
			// does not read the row again, the stream carries it.
			tb := d.table(names[0])
			for _, n := range names {
				if len(acked[d.table(n)]) > 0 {
					tb = d.table(n)
					break
				}
			}
			d.exec(t, sprintf(`update %s set v = 'while down' where id = %d`, tb, acked[tb][0]))
			got = readN(t, src, remaining+1)
			if last := got[remaining]; last.Op != core.OpUpdate || last.Source.Table != tb || last.Key["id"] != acked[tb][0] {
				t.Fatalf("run %d: after the snapshot %s %s %v, want the update made while down", run, last.Op, last.Source.Table, last.Key)
			}
			got = got[:remaining]
		}
		// A row read again after the crash keeps its identity, hence its
		// event ids, though its position's progress part differs.
		for _, ch := range got {
			k := sprintf("%s/%v", ch.Source.Table, ch.Key["id"])
			if prev, ok := identity[k]; ok && prev != string(ch.Position.Identity()) {
				t.Fatalf("run %d: row %s read again with identity %s, first read with %s", run, k, ch.Position.Identity(), prev)
			}
			identity[k] = string(ch.Position.Identity())
		}
		ids := idsOf(t, got)
		for _, n := range names {
			tb := d.table(n)
			var next int64 = 1
			if a := acked[tb]; len(a) > 0 {
				next = a[len(a)-1] + 1
			}
			for i, id := range ids[tb] {
				if id != next+int64(i) {
					t.Fatalf("run %d: table %s read %v after %d acknowledged rows, want %d onwards", run, n, ids[tb], len(acked[tb]), next)
				}
			}
			if int(next)-1+len(ids[tb]) != perTable {
				t.Fatalf("run %d: table %s read %d rows after %d acknowledged, want %d in all", run, n, len(ids[tb]), next-1, perTable)
			}
		}
		if run == 2 {
			closeSource(t, src)
			break
		}
		// Crash after the change where the most tables are under way:
		// acknowledge it, hence everything read before it, and reopen
		// from it as the runtime would from the committed checkpoint.
		cut := busiest(got)
		if sp := snapshotPos(t, got[cut]); len(sp.Others) == 0 {
			t.Logf("run %d: no change with two tables under way; crashing at change %d of %d", run, cut, len(got))
		}
		ack(t, src, got[cut].Position)
		checkpoint = got[cut].Position
		closeSource(t, src)
		for _, ch := range got[:cut+1] {
			acked[ch.Source.Table] = append(acked[ch.Source.Table], ch.Key["id"].(int64))
		}
		remaining -= cut + 1
	}
}

// busiest returns the index of the first change by which the most tables
// have started and not finished, among the first three quarters.
func busiest(chs []core.Change) int {
	total := map[string]int{}
	for _, ch := range chs {
		total[ch.Source.Table]++
	}
	seen := map[string]int{}
	best, bestN := len(chs)/2, 0
	for i, ch := range chs[:len(chs)*3/4] {
		seen[ch.Source.Table]++
		n := 0
		for tb, c := range seen {
			if c < total[tb] {
				n++
			}
		}
		if n > bestN {
			best, bestN = i, n
		}
	}
	return best
}

// TestSnapshotParallelOne: with parallel 1 tables are read one after the
// other in name order, and positions keep the single-table form of
// earlier releases.
func TestSnapshotParallelOne(t *testing.T) {
	d := newDB(t)
	for _, n := range []string{"b", "a"} {
		tb := d.table(n)
		d.exec(t,
			sprintf(`create table %s (id int primary key)`, tb),
			sprintf(`insert into %s select generate_series(1, 12)`, tb))
	}
	src := openSource(t, parallelConfig(d, 5, 1, "b", "a"), core.Position{})
	got := readN(t, src, 24)
	for i, ch := range got {
		tb, id := d.table("a"), int64(i+1)
		if i >= 12 {
			tb, id = d.table("b"), int64(i-11)
		}
		if ch.Source.Table != tb || ch.Key["id"] != id {
			t.Fatalf("change %d: %s %v, want %s %d", i, ch.Source.Table, ch.Key, tb, id)
		}
		pos := snapshotPos(t, ch)
		want := sprintf(`{"snap":"%s","t":"public.%s","k":["%d"]}`, pos.At, tb, id)
		if string(ch.Position.Data) != want || ch.Position.Version != 1 {
			t.Fatalf("change %d: position v%d %s, want v1 %s", i, ch.Position.Version, ch.Position.Data, want)
		}
	}
}

// TestResumeSingleTablePosition: a checkpoint written by a snapshot that
// read one table at a time resumes with parallel workers: tables before its
// table are done, its table resumes after its key, the rest are read whole.
func TestResumeSingleTablePosition(t *testing.T) {
	d := newDB(t)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		tb := d.table(n)
		d.exec(t,
			sprintf(`create table %s (id int primary key)`, tb),
			sprintf(`insert into %s select generate_series(1, 10)`, tb))
	}
	src := openSource(t, parallelConfig(d, 4, 1, names...), core.Position{})
	first := readN(t, src, 14)       // a: 4+4+2, b: 4
	checkpoint := first[12].Position // b, id 3
	if string(checkpoint.Data) != sprintf(`{"snap":"%s","t":"public.%s","k":["3"]}`, snapshotPos(t, first[12]).At, d.table("b")) {
		t.Fatalf("checkpoint %s is not a single-table position", checkpoint)
	}
	ack(t, src, checkpoint)
	closeSource(t, src)

	src = openSource(t, parallelConfig(d, 4, 4, names...), checkpoint)
	ids := idsOf(t, readN(t, src, 7+10))
	if want := []int64{4, 5, 6, 7, 8, 9, 10}; !slices.Equal(ids[d.table("b")], want) {
		t.Errorf("b resumed with %v, want %v", ids[d.table("b")], want)
	}
	if len(ids[d.table("a")]) != 0 || len(ids[d.table("c")]) != 10 {
		t.Errorf("resumed a %v and c %v, want nothing of a and all of c", ids[d.table("a")], ids[d.table("c")])
	}
	readNone(t, src)
}

func TestSnapshotParallelValidation(t *testing.T) {
	tests := []struct {
		name     string
		parallel any
		wantErr  bool
	}{
		{name: "default", parallel: nil},
		{name: "one", parallel: 1},
		{name: "eight", parallel: 8},
		{name: "negative", parallel: -1, wantErr: true},
		{name: "too many", parallel: 1000, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := map[string]any{"mode": "initial"}
			if tc.parallel != nil {
				snap["parallel"] = tc.parallel
			}
			v := map[string]any{"url": "postgres://u:p@db:5432/erp", "tables": []any{"public.orders"}, "snapshot": snap}
			err := connector.New().Configure(core.NewConfig("orders", v))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Configure = %v", err)
				}
				return
			}
			var fe *core.FieldError
			if !errors.As(err, &fe) || fe.Path != "snapshot.parallel" || !strings.Contains(fe.Error(), fmt.Sprint(tc.parallel)) {
				t.Fatalf("Configure = %v, want a FieldError on snapshot.parallel", err)
			}
		})
	}
}
