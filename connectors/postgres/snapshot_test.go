package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// snapshotConfig reads one table at a time (parallel 1), so that the tests
// of this file can expect tables in name order; snapshot_parallel_test.go
// covers parallel reading.
func snapshotConfig(d *db, chunk int, tables ...string) map[string]any {
	cfg := d.config(tables...)
	cfg["snapshot"] = map[string]any{"mode": "initial", "chunk_size": chunk, "parallel": 1}
	return cfg
}

// TestSnapshotThenStream: rows committed before Open are read once, as
// reads in key order, table after table; rows committed after are
// streamed once.
func TestSnapshotThenStream(t *testing.T) {
	d := newDB(t)
	a, b := d.table("a"), d.table("b")
	d.exec(t,
		sprintf(`create table %s (id int primary key, v text)`, a),
		sprintf(`create table %s (k1 text, k2 int, v text, primary key (k1, k2))`, b),
		sprintf(`insert into %s select g, 'v' || g from generate_series(1, 25) g`, a),
		sprintf(`insert into %s select 'k' || (g %% 3), g, 'x' from generate_series(1, 12) g`, b))
	src := openSource(t, snapshotConfig(d, 7, "a", "b"), core.Position{})
	d.exec(t, sprintf(`insert into %s values (26, 'late')`, a), sprintf(`update %s set v = 'changed' where id = 1`, a))
	got := readN(t, src, 25+12+2)
	for i := range 25 {
		if got[i].Op != core.OpRead || got[i].Key["id"] != int64(i+1) || got[i].Source.Table != a {
			t.Fatalf("change %d: %s %v %s", i, got[i].Op, got[i].Key, got[i].Source.Table)
		}
	}
	if got[0].After["v"] != "v1" {
		t.Errorf("snapshot saw a later update: %v", got[0].After)
	}
	prev := ""
	for i := 25; i < 37; i++ {
		if got[i].Op != core.OpRead || got[i].Source.Table != b {
			t.Fatalf("change %d: %s %s", i, got[i].Op, got[i].Source.Table)
		}
		k := got[i].Key["k1"].(string) + "/" + strings.Repeat("0", 3-len(itoa(got[i].Key["k2"]))) + itoa(got[i].Key["k2"])
		if k <= prev {
			t.Fatalf("snapshot of %s not in key order: %s after %s", b, k, prev)
		}
		prev = k
	}
	if got[37].Op != core.OpCreate || got[38].Op != core.OpUpdate || got[38].After["v"] != "changed" {
		t.Fatalf("stream after snapshot: %+v %+v", got[37], got[38])
	}
}

func itoa(v any) string { return sprintf("%d", v) }

// TestSnapshotResumesAfterCrash: a crash in the middle of a snapshot
// resumes after the last acknowledged row, never from the start; rows read
// again keep their positions; changes made while the connector was down
// arrive by the stream from the slot's consistent point.
func TestSnapshotResumesAfterCrash(t *testing.T) {
	d := newDB(t)
	a, b := d.table("a"), d.table("b")
	d.exec(t,
		sprintf(`create table %s (id int primary key, v text)`, a),
		sprintf(`create table %s (id int primary key, v text)`, b),
		sprintf(`insert into %s select g, 'a' from generate_series(1, 30) g`, a),
		sprintf(`insert into %s select g, 'b' from generate_series(1, 10) g`, b))
	cfg := snapshotConfig(d, 10, "a", "b")
	src := openSource(t, cfg, core.Position{})
	first := readN(t, src, 20)
	checkpoint := first[14].Position
	ack(t, src, checkpoint)
	closeSource(t, src) // crash: rows 16..20 were read, not checkpointed

	d.exec(t,
		sprintf(`update %s set v = 'while down' where id = 5`, a),
		sprintf(`insert into %s values (31, 'while down')`, a))
	src = openSource(t, cfg, checkpoint)
	// a: 16..31 by the snapshot (16 rows), b: 10 rows, then the update and
	// the insert from the stream.
	got := readN(t, src, 16+10+2)
	for i := range 5 {
		if string(got[i].Position.Data) != string(first[15+i].Position.Data) {
			t.Fatalf("row %d read again at %s, first at %s", i+16, got[i].Position, first[15+i].Position)
		}
	}
	for i := range 16 {
		if got[i].Key["id"] != int64(16+i) || got[i].Source.Table != a {
			t.Fatalf("resumed change %d: %v %s", i, got[i].Key, got[i].Source.Table)
		}
	}
	for i := 16; i < 26; i++ {
		if got[i].Source.Table != b || got[i].Op != core.OpRead {
			t.Fatalf("change %d: %s %s", i, got[i].Op, got[i].Source.Table)
		}
	}
	if got[26].Op != core.OpUpdate || got[26].Key["id"] != int64(5) || got[27].Op != core.OpCreate || got[27].Key["id"] != int64(31) {
		t.Fatalf("stream after resumed snapshot: %v %v, %v %v", got[26].Op, got[26].Key, got[27].Op, got[27].Key)
	}
	// Acknowledging the whole snapshot and the stream lets the slot move.
	before := d.confirmedFlush(t)
	ack(t, src, got[25].Position)
	ack(t, src, got[27].Position)
	waitFor(t, "the slot to confirm after the snapshot", func() bool { return d.confirmedFlush(t) > before })
}

// TestSnapshotModes covers never, and what initial and when_needed do when
// the slot behind a checkpoint is gone.
func TestSnapshotModes(t *testing.T) {
	d := newDB(t)
	tb := d.table("m")
	d.exec(t, sprintf(`create table %s (id int primary key)`, tb), sprintf(`insert into %s values (1), (2)`, tb))

	cfg := d.config("m")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, core.Position{})
	readNone(t, src)
	d.exec(t, sprintf(`insert into %s values (3)`, tb))
	got := readN(t, src, 1)
	ack(t, src, got[0].Position)
	closeSource(t, src)
	checkpoint := got[0].Position

	waitFor(t, "the slot to be released", func() bool {
		_, err := d.pool.Exec(context.Background(), `select pg_drop_replication_slot($1)`, d.slot())
		return err == nil
	})
	cfg["snapshot"] = map[string]any{"mode": "initial"}
	src = newSource(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Open(ctx, core.Env{}, checkpoint)
	closeSource(t, src)
	if !errors.Is(err, core.ErrFatal) || !errors.Is(err, cdc.ErrLogGone) || !strings.Contains(err.Error(), "when_needed") {
		t.Fatalf("Open with a checkpoint and no slot = %v, want a fatal error naming when_needed", err)
	}

	cfg["snapshot"] = map[string]any{"mode": "when_needed"}
	src = openSource(t, cfg, checkpoint)
	again := readN(t, src, 3)
	for i, ch := range again {
		if ch.Op != core.OpRead || ch.Key["id"] != int64(i+1) {
			t.Fatalf("when_needed snapshot change %d: %s %v", i, ch.Op, ch.Key)
		}
	}
}
