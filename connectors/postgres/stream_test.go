package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

func TestStreamInsertUpdateDelete(t *testing.T) {
	d := newDB(t)
	tb := d.table("orders")
	d.exec(t, sprintf(`create table %s (id int primary key, status text, total numeric(10,2))`, tb),
		sprintf(`insert into %s values (0, 'OLD', 1)`, tb))
	cfg := d.config("orders")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	src := openSource(t, cfg, core.Position{})
	d.exec(t,
		sprintf(`insert into %s values (1, 'NEW', 10.50)`, tb),
		sprintf(`update %s set status = 'PAID' where id = 1`, tb),
		sprintf(`delete from %s where id = 1`, tb))
	got := readN(t, src, 3)
	want := []core.Op{core.OpCreate, core.OpUpdate, core.OpDelete}
	for i, ch := range got {
		if ch.Op != want[i] {
			t.Errorf("change %d op = %s, want %s", i, ch.Op, want[i])
		}
		if ch.Key["id"] != int64(1) {
			t.Errorf("change %d key = %v", i, ch.Key)
		}
		if ch.Source.Table != tb || ch.Source.Schema != "public" || ch.Source.System != "postgres" || ch.Source.TxID == "" || ch.Source.CommitTime.IsZero() {
			t.Errorf("change %d source = %+v", i, ch.Source)
		}
		t.Logf("%s %v before=%v after=%v pos=%s", ch.Op, ch.Key, ch.Before, ch.After, ch.Position)
	}
	if got[0].After["total"].(interface{ String() string }).String() != "10.50" {
		t.Errorf("total = %#v", got[0].After["total"])
	}
	if got[1].After["status"] != "PAID" {
		t.Errorf("update after = %v", got[1].After)
	}
}

func neverSnapshot(cfg map[string]any) map[string]any {
	cfg["snapshot"] = map[string]any{"mode": "never"}
	return cfg
}

func TestTransactionAcrossTablesInCommitOrder(t *testing.T) {
	d := newDB(t)
	a, b := d.table("a"), d.table("b")
	d.exec(t, sprintf(`create table %s (id int primary key, v text)`, a), sprintf(`create table %s (id int primary key, v text)`, b))
	src := openSource(t, neverSnapshot(d.config("a", "b")), core.Position{})
	d.exec(t, sprintf(`insert into %s values (1, 'first')`, a))
	d.exec(t, sprintf(`begin; insert into %[1]s values (2, 'x'); insert into %[2]s values (1, 'y'); update %[1]s set v = 'z' where id = 2; commit`, a, b))
	got := readN(t, src, 4)
	tables := []string{a, a, b, a}
	for i, ch := range got {
		if ch.Source.Table != tables[i] {
			t.Errorf("change %d table = %s, want %s", i, ch.Source.Table, tables[i])
		}
	}
	if got[1].Source.TxID != got[3].Source.TxID || got[0].Source.TxID == got[1].Source.TxID {
		t.Errorf("transaction ids %s %s %s %s", got[0].Source.TxID, got[1].Source.TxID, got[2].Source.TxID, got[3].Source.TxID)
	}
	for i := 1; i < 4; i++ {
		p, err := cdc.DecodePosition(got[i].Position)
		if err != nil || p.Index != i-1 {
			t.Errorf("change %d position %s: index %d, want %d (%v)", i, got[i].Position, p.Index, i-1, err)
		}
	}
}

func TestLargeTransaction(t *testing.T) {
	d := newDB(t)
	tb := d.table("big")
	d.exec(t, sprintf(`create table %s (id int primary key, v text)`, tb))
	src := openSource(t, neverSnapshot(d.config("big")), core.Position{})
	const n = 100_000
	d.exec(t, sprintf(`insert into %s select g, 'row ' || g from generate_series(1, %d) g`, tb, n))
	got := readN(t, src, n)
	seen := make(map[string]bool, n)
	for i, ch := range got {
		if ch.Key["id"] != int64(i+1) {
			t.Fatalf("change %d key %v: out of order", i, ch.Key)
		}
		seen[string(ch.Position.Data)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct positions for %d changes", len(seen), n)
	}
	before := d.confirmedFlush(t)
	ack(t, src, got[n-1].Position)
	waitFor(t, "the slot to confirm the transaction", func() bool { return d.confirmedFlush(t) > before })
}

func TestDeletesUnderReplicaIdentities(t *testing.T) {
	d := newDB(t)
	def, full := d.table("def"), d.table("full")
	d.exec(t,
		sprintf(`create table %s (id int primary key, v text, n int)`, def),
		sprintf(`create table %s (id int primary key, v text, n int)`, full),
		sprintf(`alter table %s replica identity full`, full),
		sprintf(`insert into %s values (1, 'a', 10)`, def),
		sprintf(`insert into %s values (1, 'a', 10)`, full))
	src := openSource(t, neverSnapshot(d.config("def", "full")), core.Position{})
	d.exec(t,
		sprintf(`update %s set v = 'b' where id = 1`, def),
		sprintf(`update %s set v = 'b' where id = 1`, full),
		sprintf(`delete from %s where id = 1`, def),
		sprintf(`delete from %s where id = 1`, full))
	got := readN(t, src, 4)
	tests := []struct {
		name   string
		ch     core.Change
		before map[string]any
	}{
		{"update default", got[0], map[string]any{"id": int64(1)}},
		{"update full", got[1], map[string]any{"id": int64(1), "v": "a", "n": int64(10)}},
		{"delete default", got[2], map[string]any{"id": int64(1)}},
		{"delete full", got[3], map[string]any{"id": int64(1), "v": "b", "n": int64(10)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !reflect.DeepEqual(tc.ch.Before, tc.before) {
				t.Errorf("before = %v, want %v", tc.ch.Before, tc.before)
			}
			if !reflect.DeepEqual(tc.ch.Key, map[string]any{"id": int64(1)}) {
				t.Errorf("key = %v", tc.ch.Key)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	d := newDB(t)
	tb := d.table("tr")
	d.exec(t, sprintf(`create table %s (id int primary key)`, tb), sprintf(`insert into %s values (1), (2)`, tb))
	src := openSource(t, neverSnapshot(d.config("tr")), core.Position{})
	d.exec(t, sprintf(`truncate %s`, tb), sprintf(`insert into %s values (3)`, tb))
	got := readN(t, src, 2)
	if got[0].Op != core.OpTruncate || got[0].Source.Table != tb || got[1].Op != core.OpCreate {
		t.Fatalf("got %+v", got)
	}
}

func TestSchemaChangeMidStream(t *testing.T) {
	d := newDB(t)
	tb := d.table("sc")
	d.exec(t, sprintf(`create table %s (id int primary key, v text)`, tb))
	src := openSource(t, neverSnapshot(d.config("sc")), core.Position{})
	d.exec(t, sprintf(`insert into %s values (1, 'a')`, tb))
	first := readN(t, src, 1)[0]
	d.exec(t,
		sprintf(`alter table %s add column note text default 'none', add column qty numeric`, tb),
		sprintf(`insert into %s values (2, 'b', 'hello', 1.5)`, tb),
		sprintf(`alter table %s drop column v`, tb),
		sprintf(`update %s set qty = 2 where id = 1`, tb))
	got := readN(t, src, 2)
	if _, ok := first.After["note"]; ok {
		t.Errorf("first change has the later column: %v", first.After)
	}
	if want := map[string]any{"id": int64(2), "v": "b", "note": "hello", "qty": json.Number("1.5")}; !reflect.DeepEqual(got[0].After, want) {
		t.Errorf("after add column = %v, want %v", got[0].After, want)
	}
	if want := map[string]any{"id": int64(1), "note": "none", "qty": json.Number("2")}; !reflect.DeepEqual(got[1].After, want) {
		t.Errorf("after drop column = %v, want %v", got[1].After, want)
	}
}

func TestUnchangedTOASTIsFilled(t *testing.T) {
	d := newDB(t)
	def, full := d.table("tdef"), d.table("tfull")
	big := strings.Repeat("0123456789abcdef", 1<<12) // 64 KiB, stored out of line
	for _, tb := range []string{def, full} {
		d.exec(t, sprintf(`create table %s (id int primary key, n int, doc text)`, tb),
			sprintf(`alter table %s alter column doc set storage external`, tb),
			sprintf(`insert into %s values (1, 0, '%s'), (2, 0, '%s')`, tb, big, big))
	}
	d.exec(t, sprintf(`alter table %s replica identity full`, full))
	cfg := neverSnapshot(d.config("tdef", "tfull"))
	src := openSource(t, cfg, core.Position{})
	d.exec(t, sprintf(`update %s set n = 1 where id = 1`, def), sprintf(`update %s set n = 1 where id = 1`, full))
	got := readN(t, src, 2)
	for i, ch := range got {
		if ch.After["doc"] != big {
			t.Errorf("%s: doc is %d chars, want the unchanged %d", ch.Source.Table, len(fmt.Sprint(ch.After["doc"])), len(big))
		}
		if ch.Meta != nil {
			t.Errorf("change %d meta %v", i, ch.Meta)
		}
	}
	// A row deleted before its update is decoded: the value is gone, and
	// the column is named instead of carrying a placeholder.
	ack(t, src, got[1].Position)
	closeSource(t, src)
	d.exec(t, sprintf(`update %s set n = 2 where id = 2`, def), sprintf(`delete from %s where id = 2`, def))
	src = openSource(t, cfg, got[1].Position)
	again := readN(t, src, 2)
	if _, ok := again[0].After["doc"]; ok || !reflect.DeepEqual(again[0].Meta["toast_unavailable"], []string{"doc"}) {
		t.Errorf("update of a deleted row: after %v meta %v", again[0].After, again[0].Meta)
	}
}

// confirmedFlush returns the slot's confirmed flush LSN.
func (d *db) confirmedFlush(t testing.TB) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := d.pool.QueryRow(context.Background(), `select coalesce(confirmed_flush_lsn::text, '0/0') from pg_replication_slots where slot_name = $1`, d.slot()).Scan(&s); err != nil {
		t.Fatalf("read slot: %v", err)
	}
	lsn, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

func (d *db) currentLSN(t testing.TB) pglogrepl.LSN {
	t.Helper()
	var s string
	if err := d.pool.QueryRow(context.Background(), `select pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	lsn, _ := pglogrepl.ParseLSN(s)
	return lsn
}
