package sqlsink_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
)

// PostgreSQL's insert mode writes a transaction's rows with COPY, and
// with statements when the COPY cannot write them all (see copy.go).
// These tests write batches of the runtime's size, which the COPY takes.

// TestCopyTakesBatch: a batch of new rows is written by one COPY; a
// batch holding a row already there (a redelivery) is written by the
// statements, after a COPY that wrote nothing. A statement-level trigger
// logs the text of each statement that inserted rows.
func TestCopyTakesBatch(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverPostgres)
	table := d.tableName(t)
	log := table + "_log"
	d.exec(t, "CREATE TABLE "+table+" (event_id TEXT PRIMARY KEY, order_id TEXT)")
	d.exec(t, "CREATE TABLE "+log+" (pos BIGSERIAL, stmt TEXT)")
	t.Cleanup(func() { _, _ = d.db.Exec("DROP TABLE IF EXISTS " + log) })
	d.exec(t, "CREATE FUNCTION "+log+"() RETURNS trigger AS $$ BEGIN INSERT INTO "+log+" (stmt) VALUES (split_part(current_query(), ' ', 1)); RETURN NULL; END $$ LANGUAGE plpgsql")
	t.Cleanup(func() { _, _ = d.db.Exec("DROP FUNCTION IF EXISTS " + log + "() CASCADE") })
	d.exec(t, "CREATE TRIGGER log AFTER INSERT ON "+table+" FOR EACH STATEMENT EXECUTE FUNCTION "+log+"()")
	s := d.newSink(t, map[string]any{"table": table, "columns": []any{map[string]any{"name": "order_id", "value": "event.data.order_id"}}})
	open(t, s)
	var ds []core.Delivery
	for i := range 50 {
		ds = append(ds, event("t", fmt.Sprintf("k%d", i), map[string]any{"order_id": fmt.Sprintf("o-%d", i)}))
	}
	if rs := write(t, s, ds...); strings.Count(statuses(rs), "delivered") != len(ds) {
		t.Fatalf("first Write: %s", statuses(rs))
	}
	again := append([]core.Delivery{ds[0]}, event("t", "k0", map[string]any{"order_id": "o-new"}))
	if rs := write(t, s, again...); statuses(rs) != "delivered delivered" {
		t.Fatalf("second Write: %s", statuses(rs))
	}
	rows, err := d.db.Query("SELECT stmt FROM " + log + " ORDER BY pos")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var stmts []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, st)
	}
	if got, want := strings.Join(stmts, " "), "COPY INSERT"; got != want {
		t.Errorf("statements that inserted: %s, want %s (the new batch by COPY, the redelivery by an INSERT)", got, want)
	}
	if n := d.count(t, table); n != 51 {
		t.Errorf("%d rows, want 51", n)
	}
}

// TestCopyUpsert: in upsert mode, a batch of writes goes through the
// staging table, one statement per round of keys (a statement-level
// trigger logs whether each statement that wrote rows selected from
// unnest, the statements' way, or from the stage): an older version
// leaves the row, a newer or equal one overwrites it, in one batch and
// across batches. A bad row in a staged batch is refused alone, by the
// statements.
func TestCopyUpsert(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverPostgres)
	table := d.tableName(t)
	log := table + "_log"
	d.exec(t, "CREATE TABLE "+table+" (event_id TEXT, order_id TEXT PRIMARY KEY, status VARCHAR(8), version BIGINT)")
	d.exec(t, "CREATE TABLE "+log+" (pos BIGSERIAL, stmt TEXT)")
	t.Cleanup(func() { _, _ = d.db.Exec("DROP TABLE IF EXISTS " + log) })
	d.exec(t, "CREATE FUNCTION "+log+"() RETURNS trigger AS $$ BEGIN INSERT INTO "+log+" (stmt) VALUES (CASE WHEN current_query() LIKE '%unnest%' THEN 'unnest' ELSE 'stage' END); RETURN NULL; END $$ LANGUAGE plpgsql")
	t.Cleanup(func() { _, _ = d.db.Exec("DROP FUNCTION IF EXISTS " + log + "() CASCADE") })
	d.exec(t, "CREATE TRIGGER log AFTER INSERT ON "+table+" FOR EACH STATEMENT EXECUTE FUNCTION "+log+"()")
	cfg := upsertConfig(table)
	cfg["create_table"] = false
	s := d.newSink(t, cfg)
	open(t, s)
	ev := func(typ, order, status string, version int) core.Delivery {
		return event(typ, order, map[string]any{"order_id": order, "status": status, "version": version})
	}
	status := func(order string) string {
		var st string
		if err := d.db.QueryRow("SELECT status FROM "+table+" WHERE order_id = $1", order).Scan(&st); err != nil {
			return "(none)"
		}
		return st
	}
	steps := []struct {
		name string
		ds   []core.Delivery
		want string
	}{
		{name: "new keys", ds: []core.Delivery{ev("order.updated", "A", "new", 2), ev("order.updated", "B", "new", 2), ev("order.updated", "C", "new", 2)},
			want: "delivered delivered delivered"},
		{name: "older, newer and equal versions", ds: []core.Delivery{ev("order.updated", "A", "old", 1), ev("order.updated", "B", "paid", 3), ev("order.updated", "C", "same", 2)},
			want: "delivered delivered delivered"},
		{name: "a key thrice", ds: []core.Delivery{ev("order.updated", "F", "new", 1), ev("order.updated", "G", "new", 1), ev("order.updated", "F", "paid", 3), ev("order.updated", "F", "old", 2)},
			want: "delivered delivered delivered delivered"},
		{name: "a bad row", ds: []core.Delivery{ev("order.updated", "D", "far-too-long", 1), ev("order.updated", "E", "new", 1)},
			want: "failed delivered"},
	}
	for _, st := range steps {
		if rs := write(t, s, st.ds...); statuses(rs) != st.want {
			t.Fatalf("%s: %s, want %s", st.name, statuses(rs), st.want)
		}
	}
	for order, want := range map[string]string{"A": "new", "B": "paid", "C": "same", "D": "(none)", "E": "new", "F": "paid", "G": "new"} {
		if got := status(order); got != want {
			t.Errorf("%s = %s, want %s", order, got, want)
		}
	}
	rows, err := d.db.Query("SELECT stmt FROM " + log + " ORDER BY pos")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var stmts []string
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			t.Fatal(err)
		}
		stmts = append(stmts, st)
	}
	// The key thrice: three rounds. The bad row's batch: the stage
	// fails whole, then the statements write E.
	if got, want := strings.Join(stmts, " "), "stage stage stage stage stage unnest"; got != want {
		t.Errorf("statements that wrote rows: %s, want %s", got, want)
	}
}

// TestCopyDuplicatesIgnored: a batch holding events already written (a
// redelivery), new ones, and one event twice, delivers every one; the
// table gets each id once, and a row already there keeps its values.
func TestCopyDuplicatesIgnored(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverPostgres)
	table := d.tableName(t)
	s := d.newSink(t, map[string]any{"table": table, "create_table": true, "columns": typedColumns()[:1]})
	open(t, s)
	var first []core.Delivery
	for i := range 100 {
		first = append(first, event("t", fmt.Sprintf("k%d", i%7), map[string]any{"order_id": fmt.Sprintf("first-%d", i)}))
	}
	if rs := write(t, s, first...); strings.Count(statuses(rs), "delivered") != len(first) {
		t.Fatalf("first Write: %s", statuses(rs))
	}
	var again []core.Delivery
	for i, dl := range first {
		if i%2 == 0 {
			// The same event ids, with other data: the rows stay as
			// they are.
			redo := dl
			ev := *dl.Event
			ev.Data = []byte(`{"order_id": "changed"}`)
			redo.Event = &ev
			again = append(again, redo)
		}
		again = append(again, event("t", fmt.Sprintf("k%d", i%7), map[string]any{"order_id": fmt.Sprintf("new-%d", i)}))
	}
	again = append(again, again[len(again)-1])
	rs := write(t, s, again...)
	if got := strings.Count(statuses(rs), "delivered"); got != len(again) {
		t.Fatalf("second Write: %d of %d delivered: %s", got, len(again), statuses(rs))
	}
	if n := d.count(t, table); n != 200 {
		t.Errorf("%d rows, want 200 (100 first, 100 new)", n)
	}
	var changed int
	if err := d.db.QueryRow("SELECT COUNT(*) FROM " + table + " WHERE order_id = 'changed'").Scan(&changed); err != nil {
		t.Fatal(err)
	}
	if changed != 0 {
		t.Errorf("%d rows were overwritten by a redelivery, want none", changed)
	}
}

// TestCopyBadRowRefusedAlone: in a batch of 200, a value too long for its
// column is refused alone, with the database's reason naming the table;
// the later events of its key are not attempted, and the other rows
// commit.
func TestCopyBadRowRefusedAlone(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverPostgres)
	table := d.tableName(t)
	d.exec(t, "CREATE TABLE "+table+" (event_id TEXT PRIMARY KEY, order_id VARCHAR(8) NOT NULL)")
	s := d.newSink(t, map[string]any{"table": table, "columns": []any{map[string]any{"name": "order_id", "value": "event.data.order_id"}}})
	open(t, s)
	var ds []core.Delivery
	for i := range 200 {
		id := fmt.Sprintf("o-%d", i)
		if i == 77 {
			id = "far-too-long-an-id"
		}
		ds = append(ds, event("t", fmt.Sprintf("k%d", i%50), map[string]any{"order_id": id}))
	}
	rs := write(t, s, ds...)
	for i, r := range rs {
		want := core.StatusDelivered
		switch {
		case i == 77:
			want = core.StatusFailed
		case i > 77 && i%50 == 77%50:
			want = core.StatusRetry
		}
		if r.Status != want {
			t.Errorf("delivery %d: %s (%v), want %s", i, r.Status, r.Err, want)
		}
	}
	if rs[77].Err == nil || !strings.Contains(rs[77].Err.Error(), table) || !strings.Contains(rs[77].Err.Error(), "too long") {
		t.Errorf("the refused row's error %v does not name the table and the reason", rs[77].Err)
	}
	if n := d.count(t, table); n != 197 {
		t.Errorf("%d rows, want 197 (200, less the bad one and the two held behind it)", n)
	}
}

// TestCopyTypesExact: values through COPY read back exactly: text with
// the characters COPY's format escapes (tab, newline, carriage return,
// backslash, a literal \N) and other Unicode, a decimal of 38 digits,
// a 64-bit integer, a time with an offset (PostgreSQL keeps
// microseconds), a JSON document holding those characters, and nulls.
func TestCopyTypesExact(t *testing.T) {
	d := openDatabase(t, sqlsink.DriverPostgres)
	table := d.tableName(t)
	s := d.newSink(t, map[string]any{"table": table, "create_table": true, "columns": typedColumns()})
	open(t, s)
	const text = "tab\there\nnewline\r\\N back\\slash \"quoted\" é 日本 😀 \\\t"
	doc := map[string]any{"text": text, "n": json.Number("1e400"), "list": []any{json.Number("2.50"), nil, true}}
	var ds []core.Delivery
	for i := range 40 {
		data := map[string]any{
			"order_id": fmt.Sprintf("%s-%d", text, i), "qty": json.Number("-9223372036854775808"),
			"total": json.Number("12345678901234567890.123456789012345678"), "ratio": 1.0 / 3,
			"paid": i%2 == 0, "placed_at": "2026-03-01T09:30:00.123456789-05:30", "doc": doc, "note": nil,
		}
		ds = append(ds, event("t", fmt.Sprintf("k%d", i), data))
	}
	if rs := write(t, s, ds...); strings.Count(statuses(rs), "delivered") != len(ds) {
		t.Fatalf("Write: %s", statuses(rs))
	}
	rows, err := d.db.Query("SELECT order_id, qty, total::text, ratio, paid, placed_at, doc::text, note FROM " + table + " ORDER BY order_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			orderID, total, gotDoc string
			qty                    int64
			ratio                  float64
			paid                   bool
			placed                 time.Time
			note                   *string
		)
		if err := rows.Scan(&orderID, &qty, &total, &ratio, &paid, &placed, &gotDoc, &note); err != nil {
			t.Fatal(err)
		}
		n++
		if !strings.HasPrefix(orderID, text+"-") {
			t.Errorf("order_id = %q, want %q and a number", orderID, text+"-")
		}
		if qty != -9223372036854775808 || ratio != 1.0/3 || note != nil {
			t.Errorf("qty, ratio, note = %d, %v, %v; want the event's", qty, ratio, note)
		}
		want, _ := new(big.Rat).SetString("12345678901234567890.123456789012345678")
		if got, ok := new(big.Rat).SetString(total); !ok || got.Cmp(want) != 0 {
			t.Errorf("total = %s, want 12345678901234567890.123456789012345678 exactly", total)
		}
		if wantAt := time.Date(2026, 3, 1, 15, 0, 0, 123457000, time.UTC); !placed.Equal(wantAt) {
			t.Errorf("placed_at = %v, want %v (microseconds, rounded)", placed, wantAt)
		}
		var got any
		dec := json.NewDecoder(strings.NewReader(gotDoc))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("doc %s: %v", gotDoc, err)
		}
		wantDoc := map[string]any{"text": text, "n": json.Number("1e400"), "list": []any{json.Number("2.50"), nil, true}}
		if !jsonEqual(got, wantDoc) {
			t.Errorf("doc = %s, want the event's document", gotDoc)
		}
	}
	if n != len(ds) {
		t.Errorf("%d rows, want %d", n, len(ds))
	}
}

// jsonEqual compares two decoded documents, numbers by their value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		rx, okx := new(big.Rat).SetString(x.String())
		ry, oky := new(big.Rat).SetString(y.String())
		return okx && oky && rx.Cmp(ry) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if !jsonEqual(v, y[k]) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
