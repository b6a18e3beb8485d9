package sqlsink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
)

// typedColumns maps an event to a column of each type.
func typedColumns() []any {
	return []any{
		map[string]any{"name": "order_id", "value": "event.data.order_id"},
		map[string]any{"name": "qty", "value": "event.data.qty", "type": "integer"},
		map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
		map[string]any{"name": "ratio", "value": "event.data.ratio", "type": "double"},
		map[string]any{"name": "paid", "value": "event.data.paid", "type": "boolean"},
		map[string]any{"name": "placed_at", "value": "event.data.placed_at", "type": "timestamp"},
		map[string]any{"name": "doc", "value": "event.data.doc", "type": "json"},
		map[string]any{"name": "note", "value": "event.data.note"},
	}
}

// TestTypesExact: create_table makes the table from the mapping, and each
// type is written exactly: a decimal with more digits than a float64
// holds keeps them, a time with an offset is the same instant (in UTC),
// JSON reads back as the same document, null stays NULL.
func TestTypesExact(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			s := d.newSink(t, map[string]any{"table": table, "create_table": true, "columns": typedColumns()})
			open(t, s)
			ev := rawEvent("com.example.order.accepted", "A-1", `{"order_id": "A-1", "qty": 9007199254740993, "total": 1234567890123.4567890123,
				"ratio": 0.25, "paid": true, "placed_at": "2026-03-01T09:30:00.123456+01:00", "doc": {"a": [1, 2.50, "x"], "b": null}, "note": null}`)
			if rs := write(t, s, ev); rs[0].Status != core.StatusDelivered {
				t.Fatalf("Write: %s (%v)", rs[0].Status, rs[0].Err)
			}
			var (
				id, orderID string
				lines       int64
				total       string
				ratio       float64
				paid        bool
				placed      any
				doc         string
				note        *string
			)
			err := d.db.QueryRow("SELECT event_id, order_id, qty, total, ratio, paid, placed_at, doc, note FROM "+table).
				Scan(&id, &orderID, &lines, &total, &ratio, &paid, &placed, &doc, &note)
			if err != nil {
				t.Fatal(err)
			}
			if id != ev.Event.ID || orderID != "A-1" || lines != 9007199254740993 || ratio != 0.25 || !paid || note != nil {
				t.Errorf("row = %q %q %d %v %v %v, want the event's values", id, orderID, lines, ratio, paid, note)
			}
			want, _ := new(big.Rat).SetString("1234567890123.4567890123")
			if got, ok := new(big.Rat).SetString(total); !ok || got.Cmp(want) != 0 {
				t.Errorf("total = %s, want 1234567890123.4567890123 exactly", total)
			}
			wantAt := time.Date(2026, 3, 1, 8, 30, 0, 123456000, time.UTC)
			switch v := placed.(type) {
			case time.Time:
				if !v.Equal(wantAt) {
					t.Errorf("placed_at = %v, want %v", v, wantAt)
				}
			case string:
				if v != "2026-03-01T08:30:00.123456000Z" {
					t.Errorf("placed_at = %q, want 2026-03-01T08:30:00.123456000Z (UTC, nine fraction digits)", v)
				}
			default:
				t.Errorf("placed_at = %T %v", placed, placed)
			}
			var gotDoc, wantDoc any
			_ = json.Unmarshal([]byte(doc), &gotDoc)
			_ = json.Unmarshal([]byte(`{"a": [1, 2.5, "x"], "b": null}`), &wantDoc)
			if !reflect.DeepEqual(gotDoc, wantDoc) {
				t.Errorf("doc = %s, want the event's document", doc)
			}
		})
	}
}

// TestInsertOncePerID: a batch written again (a redelivery after a crash)
// adds no row.
func TestInsertOncePerID(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			s := d.newSink(t, map[string]any{"table": table, "create_table": true, "columns": typedColumns()[:1]})
			open(t, s)
			ds := []core.Delivery{event("t", "A", map[string]any{"order_id": "A"}), event("t", "B", map[string]any{"order_id": "B"})}
			for range 2 {
				if rs := write(t, s, ds...); statuses(rs) != "delivered delivered" {
					t.Fatalf("Write: %s", statuses(rs))
				}
			}
			if n := d.count(t, table); n != 2 {
				t.Errorf("%d rows after writing 2 events twice, want 2", n)
			}
		})
	}
}

// upsertConfig keeps the latest status per order, ordered by version,
// deleting the order on a deleted event.
func upsertConfig(table string) map[string]any {
	return map[string]any{
		"table": table, "mode": "upsert", "create_table": true,
		"key": []any{"order_id"}, "version": "version",
		"delete_when": `event.type == "order.deleted"`,
		"columns": []any{
			map[string]any{"name": "order_id", "value": "event.data.order_id"},
			map[string]any{"name": "status", "value": "event.data.status"},
			map[string]any{"name": "version", "value": "event.data.version", "type": "integer"},
		},
	}
}

// TestUpsertOlderNeverOverwrites: in one batch and across batches, an
// event with an older version neither overwrites nor deletes the row of a
// newer one; a newer delete removes it.
func TestUpsertOlderNeverOverwrites(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			s := d.newSink(t, upsertConfig(table))
			open(t, s)
			ev := func(typ, order, status string, version int) core.Delivery {
				return event(typ, order, map[string]any{"order_id": order, "status": status, "version": version})
			}
			status := func(order string) string {
				var st string
				err := d.db.QueryRow("SELECT status FROM " + table + " WHERE order_id = '" + order + "'").Scan(&st)
				if err != nil {
					return "(none)"
				}
				return st
			}
			// A: 1, 3, then 2 (older) in one batch; B: 5 then 4 in two.
			rs := write(t, s, ev("order.updated", "A", "new", 1), ev("order.updated", "A", "shipped", 3), ev("order.updated", "A", "paid", 2), ev("order.updated", "B", "paid", 5))
			if statuses(rs) != "delivered delivered delivered delivered" {
				t.Fatalf("Write: %s", statuses(rs))
			}
			write(t, s, ev("order.updated", "B", "new", 4), ev("order.deleted", "A", "", 2))
			if got := status("A"); got != "shipped" {
				t.Errorf("A = %s, want shipped (version 3; versions 2 are older, the delete too)", got)
			}
			if got := status("B"); got != "paid" {
				t.Errorf("B = %s, want paid (version 5; version 4 is older)", got)
			}
			write(t, s, ev("order.deleted", "A", "", 3), ev("order.updated", "B", "shipped", 6))
			if got := status("A"); got != "(none)" {
				t.Errorf("A = %s after a delete of version 3, want no row", got)
			}
			if got := status("B"); got != "shipped" {
				t.Errorf("B = %s, want shipped (version 6)", got)
			}
		})
	}
}

// TestBadRowRefusedAlone: a row that breaks a NOT NULL constraint is
// refused (for the dead-letter topic) with the database's reason, the
// later delivery of its key is not attempted, and the other rows of the
// batch commit.
func TestBadRowRefusedAlone(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			d.exec(t, "CREATE TABLE "+table+" (event_id "+d.idType()+" PRIMARY KEY, order_id TEXT NOT NULL)")
			s := d.newSink(t, map[string]any{"table": table, "columns": []any{map[string]any{"name": "order_id", "value": "event.data.order_id"}}})
			open(t, s)
			ds := []core.Delivery{
				event("t", "A", map[string]any{"order_id": "A-1"}),
				event("t", "B", map[string]any{}), // order_id null: refused
				event("t", "A", map[string]any{"order_id": "A-2"}),
				event("t", "B", map[string]any{"order_id": "B-2"}), // held behind B's refusal
				event("t", "C", map[string]any{"order_id": "C-1"}),
			}
			rs := write(t, s, ds...)
			if got, want := statuses(rs), "delivered failed delivered retry delivered"; got != want {
				t.Fatalf("statuses %s, want %s (errors %v %v)", got, want, rs[1].Err, rs[3].Err)
			}
			if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), table) {
				t.Errorf("the refused row's error %v does not name the table", rs[1].Err)
			}
			if rs[3].Err != nil {
				t.Errorf("the held delivery has error %v; a delivery not attempted has none", rs[3].Err)
			}
			if n := d.count(t, table); n != 3 {
				t.Errorf("%d rows, want the 3 good ones", n)
			}
		})
	}
}

// TestValueRefused: a value its column type cannot take (text for an
// integer) is refused before any statement, naming the column.
func TestValueRefused(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverSQLite)
	table := d.tableName(t)
	s := d.newSink(t, map[string]any{"table": table, "create_table": true, "columns": typedColumns()[:2]})
	open(t, s)
	rs := write(t, s, event("t", "A", map[string]any{"order_id": "A", "qty": "many"}), event("t", "B", map[string]any{"order_id": "B", "qty": 2}))
	if statuses(rs) != "failed delivered" {
		t.Fatalf("statuses %s, want failed delivered", statuses(rs))
	}
	if !strings.Contains(rs[0].Err.Error(), `column "qty" (integer)`) {
		t.Errorf("error %v does not name the column and its type", rs[0].Err)
	}
}

// TestOpenChecksTable: Open names the column the table lacks, and a
// missing table, and both are fatal.
func TestOpenChecksTable(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			d.exec(t, "CREATE TABLE "+table+" (event_id "+d.idType()+" PRIMARY KEY, order_id TEXT)")
			tests := []struct {
				name  string
				table string
				want  string
			}{
				{name: "missing column", table: table, want: `table ` + table + ` has no column "qty"`},
				{name: "missing table", table: table + "_x", want: "does not exist: create it, or set create_table: true"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					s := d.newSink(t, map[string]any{"table": tt.table, "columns": typedColumns()[:2]})
					err := s.Open(context.Background(), core.Env{StateDir: t.TempDir()})
					if err == nil {
						s.Close(context.Background())
						t.Fatal("Open succeeded")
					}
					if !strings.Contains(err.Error(), tt.want) || !errors.Is(err, core.ErrFatal) {
						t.Errorf("Open: %v; want a fatal error saying %q", err, tt.want)
					}
				})
			}
		})
	}
}

// TestConcurrentWritesRefusedAlone: Writes running at once (which share
// transactions) each get their own outcomes: the bad row of one is
// refused, and every good row of all of them commits.
func TestConcurrentWritesRefusedAlone(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			table := d.tableName(t)
			d.exec(t, "CREATE TABLE "+table+" (event_id "+d.idType()+" PRIMARY KEY, order_id TEXT NOT NULL)")
			s := d.newSink(t, map[string]any{"table": table, "max_open_conns": 2, "columns": []any{map[string]any{"name": "order_id", "value": "event.data.order_id"}}})
			open(t, s)
			const writers, rounds = 8, 5
			var wg sync.WaitGroup
			errs := make(chan string, writers*rounds)
			for w := range writers {
				wg.Go(func() {
					for r := range rounds {
						key := fmt.Sprintf("w%d", w)
						ds := []core.Delivery{
							event("t", key+"a", map[string]any{"order_id": "x"}),
							event("t", key+"b", map[string]any{}), // refused
							event("t", key+"c", map[string]any{"order_id": "y"}),
						}
						ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
						rs := s.Write(ctx, ds)
						cancel()
						if got := statuses(rs); got != "delivered failed delivered" {
							errs <- fmt.Sprintf("writer %d round %d: %s (%v)", w, r, got, rs)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if n := d.count(t, table); n != writers*rounds*2 {
				t.Errorf("%d rows, want %d", n, writers*rounds*2)
			}
		})
	}
}
