package sqlsink

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

var copyTables atomic.Int64

// copyPair is two sinks of one mapping into two PostgreSQL tables: one
// writes with COPY, the other with statements.
type copyPair struct {
	db           *sql.DB
	copy, stmt   *Sink
	copyT, stmtT string
}

func newCopyPair(t testing.TB, mode string) *copyPair {
	t.Helper()
	dsn := servicetest.Postgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := &copyPair{db: db}
	n := fmt.Sprintf("%d_%d", time.Now().UnixNano()%1e9, copyTables.Add(1))
	p.copyT, p.stmtT = "copy_a_"+n, "copy_b_"+n
	mk := func(table string) *Sink {
		s := New()
		values := map[string]any{
			"driver": DriverPostgres, "dsn": dsn, "table": table, "create_table": true, "mode": mode,
			"columns": []any{
				map[string]any{"name": "txt", "value": "event.data.txt"},
				map[string]any{"name": "qty", "value": "event.data.qty", "type": "integer"},
				map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
				map[string]any{"name": "ratio", "value": "event.data.ratio", "type": "double"},
				map[string]any{"name": "paid", "value": "event.data.paid", "type": "boolean"},
				map[string]any{"name": "at", "value": "event.data.at", "type": "timestamp"},
				map[string]any{"name": "doc", "value": "event.data.doc", "type": "json"},
			},
		}
		if mode == ModeUpsert {
			values["key"], values["version"] = []any{"txt"}, "qty"
		}
		err := s.Configure(core.NewConfig("orders_table", values))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.Open(ctx, core.Env{Name: "orders_table"}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = s.Close(context.Background())
			_, _ = db.Exec("DROP TABLE IF EXISTS " + table)
		})
		return s
	}
	p.copy, p.stmt = mk(p.copyT), mk(p.stmtT)
	return p
}

// write writes ds with COPY into one table and with statements into the
// other, and returns the COPY's error.
func (p *copyPair) write(t *testing.T, ds []core.Delivery) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	jobOf := func(s *Sink) *job {
		b := &batch{ds: ds, out: make([]core.Result, len(ds)), done: make([]bool, len(ds)), held: map[string]bool{}}
		return &job{ctx: ctx, b: b, rows: s.rows(b)}
	}
	db := func(s *Sink) *sql.DB {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.db
	}
	copyErr := p.copy.copyGroup(ctx, db(p.copy), []*job{jobOf(p.copy)})
	p.stmt.copier.stmt, p.stmt.copier.stage = "", ""
	if err := p.stmt.applyGroup(ctx, db(p.stmt), []*job{jobOf(p.stmt)}); err != nil {
		t.Fatalf("statements: %v", err)
	}
	return copyErr
}

// rows returns the rows of table as text, ordered by event id.
func (p *copyPair) rows(t *testing.T, table string) []string {
	t.Helper()
	rs, err := p.db.Query("SELECT concat_ws('|', event_id, txt, qty::text, total::text, ratio::text, paid::text, at::text, doc::text, " +
		"(txt IS NULL)::text, (doc IS NULL)::text) FROM " + table + " ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// FuzzCopyMatchesStatements: COPY writes what the statements it shadows
// write, value for value (compared as PostgreSQL's text of each column),
// whatever the text, numbers, times and documents; when the statements
// refuse a row, the COPY writes nothing.
func FuzzCopyMatchesStatements(f *testing.F) {
	f.Add("plain", int64(1), "12.50", 0.25, true, int64(0), `{"a": [1, 2.50, "x"], "b": null}`)
	f.Add("tab\there\nnew\rline\\N \\ back\\", int64(-1)<<63, "-0.000000000000000000000000000001", -1e300, false, int64(1772357400123456789), `"\t\\N\u0000"`)
	f.Add("", int64(1)<<62, "1e30", 5e-324, true, int64(-62135596800000000000/1000), `[]`)
	f.Add("\\.", int64(0), ".5", 1.0/3, false, int64(253402300799999999999/1000), `{"\\.": "\n"}`)
	f.Add("null \x00 byte", int64(7), "NaN", 0.1, true, int64(1), `null`)
	f.Add("nul \x00 in text", int64(7), "1", 0.1, true, int64(1), `{"nul": "\u0000"}`)
	f.Add("é 日本 😀 \xff", int64(7), "1.", 0.1, true, int64(1), `{"é": "日本"}`)
	pair := newCopyPair(f, ModeInsert)
	f.Fuzz(func(t *testing.T, txt string, qty int64, total string, ratio float64, paid bool, atNanos int64, doc string) {
		data := map[string]any{
			"txt": txt, "qty": qty, "total": json.RawMessage(total), "ratio": ratio, "paid": paid,
			"at": time.Unix(0, atNanos).UTC().Format(time.RFC3339Nano), "doc": json.RawMessage(doc),
		}
		b, err := json.Marshal(data)
		if err != nil {
			// Not JSON numbers or documents: the data has another total
			// or doc.
			data["total"], data["doc"] = total, doc
			if b, err = json.Marshal(data); err != nil {
				t.Skip("no JSON data of these values")
			}
		}
		ds := []core.Delivery{{Event: &core.Event{
			ID: fmt.Sprintf("ev-%d", time.Now().UnixNano()), Source: "/fuzz", SpecVersion: core.SpecVersion, Type: "t",
			Time: time.Now(), DataContentType: "application/json", Data: b, PartitionKey: "k",
		}}}
		beforeA, beforeS := len(pair.rows(t, pair.copyT)), len(pair.rows(t, pair.stmtT))
		copyErr := pair.write(t, ds)
		a, s := pair.rows(t, pair.copyT), pair.rows(t, pair.stmtT)
		copyWrote, stmtWrote := len(a) > beforeA, len(s) > beforeS
		switch {
		case copyErr != nil && stmtWrote:
			t.Fatalf("COPY failed (%v) where the statements wrote %q", copyErr, s[len(s)-1])
		case copyWrote && !stmtWrote:
			t.Fatalf("COPY wrote %q where the statements wrote nothing", a)
		case copyErr != nil || !stmtWrote:
			// Refused by both: the tables stay equal.
			return
		}
		if strings.Join(a, "\n") != strings.Join(s, "\n") {
			t.Fatalf("COPY wrote\n%s\nstatements wrote\n%s", strings.Join(a, "\n"), strings.Join(s, "\n"))
		}
	})
}

// FuzzCopyUpsertMatchesStatements: upsert mode's COPY through its staging
// table leaves the table as the statements leave theirs, batch after
// batch on the same few keys (txt the key, qty the version), each batch
// two events of a key (two rounds) and one of another: a newer or equal
// version overwrites the row, an older one does not.
func FuzzCopyUpsertMatchesStatements(f *testing.F) {
	f.Add("a", int64(2), int64(1), "1.50", `{"v": 2}`)
	f.Add("a", int64(1), int64(3), "9", `{"v": 1}`)
	f.Add("a", int64(2), int64(2), "2.000", `{"v": "same version"}`)
	f.Add("b", int64(-5), int64(-5), "-0", `[]`)
	f.Add("tab\there", int64(7), int64(8), "1e3", `"\\N"`)
	f.Add("b", int64(-6), int64(0), "NaN", `null`)
	f.Add("", int64(0), int64(-1), "0", `{}`)
	pair := newCopyPair(f, ModeUpsert)
	f.Fuzz(func(t *testing.T, key string, version, version2 int64, total, doc string) {
		var ds []core.Delivery
		for i, v := range []struct {
			key     string
			version int64
		}{{key, version}, {key + "-other", version2}, {key, version2}} {
			data := map[string]any{"txt": v.key, "qty": v.version, "total": json.RawMessage(total), "ratio": float64(i), "paid": true,
				"at": "2026-03-01T09:30:00Z", "doc": json.RawMessage(doc)}
			b, err := json.Marshal(data)
			if err != nil {
				data["total"], data["doc"] = total, doc
				if b, err = json.Marshal(data); err != nil {
					t.Skip("no JSON data of these values")
				}
			}
			ds = append(ds, core.Delivery{Event: &core.Event{
				ID: fmt.Sprintf("ev-%d-%d", time.Now().UnixNano(), i), Source: "/fuzz", SpecVersion: core.SpecVersion, Type: "t",
				Time: time.Now(), DataContentType: "application/json", Data: b, PartitionKey: v.key,
			}})
		}
		copyErr := pair.write(t, ds)
		a, s := pair.rows(t, pair.copyT), pair.rows(t, pair.stmtT)
		if strings.Join(a, "\n") != strings.Join(s, "\n") {
			if copyErr != nil {
				// The statements wrote what COPY could not: COPY
				// wrote nothing, and the tables differ from now on.
				t.Fatalf("COPY failed (%v) where the statements wrote:\n%s\nCOPY's table:\n%s", copyErr, strings.Join(s, "\n"), strings.Join(a, "\n"))
			}
			t.Fatalf("COPY left\n%s\nstatements left\n%s", strings.Join(a, "\n"), strings.Join(s, "\n"))
		}
	})
}
