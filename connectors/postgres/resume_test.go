package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestCrashBetweenPublishAndCheckpoint: events of changes after the stored
// checkpoint were published, then the process died. Reopening from the
// checkpoint reads them again with the same positions, hence the same
// event ids, and loses nothing.
func TestCrashBetweenPublishAndCheckpoint(t *testing.T) {
	d := newDB(t)
	tb := d.table("c")
	d.exec(t, sprintf(`create table %s (id int primary key)`, tb))
	cfg := neverSnapshot(d.config("c"))
	src := openSource(t, cfg, core.Position{})
	d.exec(t,
		sprintf(`insert into %s select generate_series(1, 5)`, tb),
		sprintf(`insert into %s select generate_series(6, 10)`, tb))
	first := readN(t, src, 10)
	checkpoint := first[2].Position // inside the first transaction
	ack(t, src, checkpoint)
	closeSource(t, src) // the crash: changes 3..9 were published, not checkpointed

	src = openSource(t, cfg, checkpoint)
	d.exec(t, sprintf(`insert into %s values (11)`, tb))
	second := readN(t, src, 8)
	for i, ch := range second[:7] {
		want := first[3+i]
		if string(ch.Position.Data) != string(want.Position.Data) {
			t.Fatalf("replayed change %d at %s, first read at %s", i, ch.Position, want.Position)
		}
		if core.EventID("c", ch.Position, "r") != core.EventID("c", want.Position, "r") {
			t.Fatal("event ids differ")
		}
		if ch.Key["id"] != want.Key["id"] {
			t.Fatalf("replayed change %d key %v, want %v", i, ch.Key, want.Key)
		}
	}
	if second[7].Key["id"] != int64(11) {
		t.Fatalf("new change key %v", second[7].Key)
	}
}

// TestWalsenderTerminated: the server ends the replication connection (as
// a restart does). Read fails, and reopening from the checkpoint, as the
// runtime does, loses nothing written meanwhile.
func TestWalsenderTerminated(t *testing.T) {
	d := newDB(t)
	tb := d.table("w")
	d.exec(t, sprintf(`create table %s (id int primary key)`, tb))
	cfg := neverSnapshot(d.config("w"))
	src := openSource(t, cfg, core.Position{})
	d.exec(t, sprintf(`insert into %s values (1)`, tb), sprintf(`insert into %s values (2)`, tb))
	got := readN(t, src, 2)
	ack(t, src, got[0].Position)
	d.exec(t, sprintf(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = '%s'`, d.slot()))
	d.exec(t, sprintf(`insert into %s values (3)`, tb))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if _, err := src.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("Read did not fail after the walsender ended")
			}
			break
		}
	}
	closeSource(t, src)
	waitFor(t, "the slot to be released", func() bool {
		var active bool
		_ = d.pool.QueryRow(context.Background(), `select active from pg_replication_slots where slot_name = $1`, d.slot()).Scan(&active)
		return !active
	})
	src = openSource(t, cfg, got[0].Position)
	again := readN(t, src, 2)
	if again[0].Key["id"] != int64(2) || again[1].Key["id"] != int64(3) {
		t.Fatalf("after reconnect: %v, %v", again[0].Key, again[1].Key)
	}
	if string(again[0].Position.Data) != string(got[1].Position.Data) {
		t.Fatalf("position changed across the reconnect: %s, %s", again[0].Position, got[1].Position)
	}
}

// TestSlotInUse: a second consumer of the same slot gets an error naming
// the problem and the fix.
func TestSlotInUse(t *testing.T) {
	d := newDB(t)
	tb := d.table("u")
	d.exec(t, sprintf(`create table %s (id int primary key)`, tb))
	cfg := neverSnapshot(d.config("u"))
	openSource(t, cfg, core.Position{})
	src := newSource(t, cfg)
	defer closeSource(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Open(ctx, core.Env{}, core.Position{})
	if err == nil || !strings.Contains(err.Error(), "in use by another consumer") {
		t.Fatalf("Open = %v", err)
	}
}

// TestIdleSlotHeartbeat: while other tables are written and the captured
// one is not, the slot's confirmed position follows the server's.
func TestIdleSlotHeartbeat(t *testing.T) {
	for _, action := range []string{"status", "message"} {
		t.Run(action, func(t *testing.T) {
			d := newDB(t)
			tb, other := d.table("idle"), d.table("busy")
			d.exec(t, sprintf(`create table %s (id int primary key)`, tb), sprintf(`create table %s (id int primary key, v text)`, other))
			cfg := neverSnapshot(d.config("idle"))
			cfg["heartbeat"] = map[string]any{"interval": "50ms", "action": action}
			src := openSource(t, cfg, core.Position{})
			d.exec(t, sprintf(`insert into %s select g, repeat('x', 200) from generate_series(1, 5000) g`, other))
			target := d.currentLSN(t)
			waitFor(t, "the idle slot to confirm past the other table's writes", func() bool { return d.confirmedFlush(t) >= target })
			st := src.Status()
			if _, ok := st["slot_lag_bytes"]; !ok {
				t.Errorf("status %v has no slot lag", st)
			}
		})
	}
}
