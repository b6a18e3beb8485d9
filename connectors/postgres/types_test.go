package postgres_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestTypes checks every column type's value, both streamed and read by a
// snapshot: one column per case, one row per source.
func TestTypes(t *testing.T) {
	d := newDB(t)
	tb := d.table("types")
	mood, dom := d.table("mood"), d.table("posint")
	d.exec(t, sprintf(`create type %s as enum ('sad', 'ok', 'happy')`, mood),
		sprintf(`create domain %s as integer check (value > 0)`, dom))
	ts := time.Date(2024, 5, 1, 12, 30, 0, 500000000, time.UTC)
	tests := []struct {
		name, typ, literal string
		want               any
	}{
		{"smallint", "smallint", "-7", int64(-7)},
		{"integer", "integer", "2147483647", int64(2147483647)},
		{"bigint", "bigint", "9223372036854775807", int64(9223372036854775807)},
		{"numeric", "numeric(30,10)", "12345678901234567890.0123456789", json.Number("12345678901234567890.0123456789")},
		{"numeric plain", "numeric", "0.1", json.Number("0.1")},
		{"numeric nan", "numeric", "'NaN'", "NaN"},
		{"real", "real", "1.5", 1.5},
		{"double", "double precision", "0.1", 0.1},
		{"double infinity", "double precision", "'Infinity'", "Infinity"},
		{"text", "text", "'héllo, \"world\"'", "héllo, \"world\""},
		{"varchar", "varchar(10)", "'abc'", "abc"},
		{"char", "char(5)", "'ab'", "ab   "},
		{"bool true", "boolean", "true", true},
		{"bool false", "boolean", "false", false},
		{"timestamptz", "timestamptz", "'2024-05-01 14:30:00.5+02'", ts},
		{"timestamp", "timestamp", "'2024-05-01 12:30:00.5'", "2024-05-01T12:30:00.5"},
		{"date", "date", "'2024-05-01'", "2024-05-01"},
		{"time", "time", "'12:30:00.25'", "12:30:00.25"},
		{"interval", "interval", "'1 year 2 months 3 days 04:05:06.5'", "P1Y2M3DT4H5M6.5S"},
		{"uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"json", "json", `'{"a": [1, 2.5, "x"], "b": null}'`, map[string]any{"a": []any{json.Number("1"), json.Number("2.5"), "x"}, "b": nil}},
		{"jsonb", "jsonb", `'{"n": 12345678901234567890}'`, map[string]any{"n": json.Number("12345678901234567890")}},
		{"int array", "integer[]", "'{1,2,NULL}'", []any{int64(1), int64(2), nil}},
		{"text array", "text[]", `'{"a b","c,d","e\"f",NULL}'`, []any{"a b", "c,d", "e\"f", nil}},
		{"2d array", "integer[][]", "'{{1,2},{3,4}}'", []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}}},
		{"numeric array", "numeric[]", "'{1.10,2}'", []any{json.Number("1.10"), json.Number("2")}},
		{"empty array", "text[]", "'{}'", []any{}},
		{"bytea", "bytea", `'\xdeadbeef'`, []byte{0xde, 0xad, 0xbe, 0xef}},
		{"enum", mood, "'happy'", "happy"},
		{"enum array", mood + "[]", "'{sad,ok}'", []any{"sad", "ok"}},
		{"domain", dom, "42", int64(42)},
		{"null", "text", "NULL", nil},
	}
	cols := "id int primary key"
	vals := "1"
	for i, tc := range tests {
		cols += sprintf(", c%d %s", i, tc.typ)
		vals += ", " + tc.literal
	}
	d.exec(t, sprintf(`create table %s (%s)`, tb, cols), sprintf(`insert into %s values (%s)`, tb, vals))
	cfg := d.config("types")
	src := openSource(t, cfg, core.Position{})
	snap := readN(t, src, 1)[0]
	d.exec(t, sprintf(`insert into %s select 2, %s from %s where id = 1`, tb, colList(len(tests)), tb))
	streamed := readN(t, src, 1)[0]
	if snap.Op != core.OpRead || streamed.Op != core.OpCreate {
		t.Fatalf("ops %s, %s", snap.Op, streamed.Op)
	}
	for _, row := range []struct {
		name string
		ch   core.Change
	}{{"snapshot", snap}, {"stream", streamed}} {
		for i, tc := range tests {
			t.Run(row.name+"/"+tc.name, func(t *testing.T) {
				got, ok := row.ch.After[sprintf("c%d", i)]
				if !ok {
					t.Fatalf("column missing from %v", row.ch.After)
				}
				if gt, ok := got.(time.Time); ok {
					if wt, ok := tc.want.(time.Time); !ok || !gt.Equal(wt) {
						t.Fatalf("got %v, want %v", got, tc.want)
					}
					return
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %#v (%T), want %#v (%T)", got, got, tc.want, tc.want)
				}
			})
		}
	}
	// Values must survive JSON, as the rules engine and the stream need.
	if _, err := json.Marshal(streamed.After); err != nil {
		t.Fatalf("marshal: %v", err)
	}
}

func colList(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ", "
		}
		s += sprintf("c%d", i)
	}
	return s
}
