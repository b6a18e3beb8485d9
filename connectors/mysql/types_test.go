package mysql_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestTypesRoundTrip writes one row of every type before the snapshot and
// the same row again while streaming: both read the values the README's
// type mapping states, whichever way they came.
func TestTypesRoundTrip(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE types (
		id INT PRIMARY KEY,
		ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED,
		i INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED,
		de DECIMAL(30,10), fl FLOAT, db DOUBLE,
		dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(3) NULL, da DATE, tm TIME(2), yr YEAR,
		js JSON, en ENUM('small','medium','large'), st SET('a','b','c'),
		b1 BIT(1), b12 BIT(12), bl BLOB, bn BINARY(4), vb VARBINARY(10),
		tx TEXT, vc VARCHAR(40), ch CHAR(5),
		zd DATE, zdt DATETIME, nul VARCHAR(3),
		gen BIGINT AS (i + 1) VIRTUAL, gst VARCHAR(50) AS (CONCAT(vc, '!')) STORED
	)`)
	const values = `-5, 200, 65535, -8388608, 16777215, 4294967295, -9223372036854775808, 18446744073709551615,
		'12345678901234567890.0123456789', 0.1, 0.1,
		'2024-05-01 12:30:00', '2024-05-01 12:30:00.123456', '2024-05-01 10:00:00.5', '2024-02-29', '-838:59:59.50', 2155,
		'{"a": [1, 2.50, "x"], "big": 12345678901234567890}', 'medium', 'a,c',
		b'1', b'101000000001', x'00ff10', x'0102', x'0a0b',
		'text 😀 ü', 'varchar 🚀', 'ch',
		'0000-00-00', '0000-00-00 00:00:00', NULL`
	d.exec(t, "SET SESSION sql_mode = ''", "INSERT INTO types (id, ti, tu, si, mi, mu, i, bi, bu, de, fl, db, dt, dt6, ts, da, tm, yr, js, en, st, b1, b12, bl, bn, vb, tx, vc, ch, zd, zdt, nul) VALUES (1, "+values+")")
	src := openSource(t, d.config("types"), t.TempDir(), core.Position{})
	snap := readN(t, src, 1)
	d.exec(t, "SET SESSION sql_mode = ''", "INSERT INTO types (id, ti, tu, si, mi, mu, i, bi, bu, de, fl, db, dt, dt6, ts, da, tm, yr, js, en, st, b1, b12, bl, bn, vb, tx, vc, ch, zd, zdt, nul) VALUES (2, "+values+")")
	stream := readN(t, src, 1)
	if snap[0].Op != core.OpRead || stream[0].Op != core.OpCreate {
		t.Fatalf("ops %s, %s", snap[0].Op, stream[0].Op)
	}
	want := map[string]any{
		"ti": int64(-5), "tu": int64(200), "si": int64(65535), "mi": int64(-8388608), "mu": int64(16777215),
		"i": int64(4294967295), "bi": int64(-9223372036854775808), "bu": json.Number("18446744073709551615"),
		"de": json.Number("12345678901234567890.0123456789"), "fl": 0.1, "db": 0.1,
		"dt": "2024-05-01T12:30:00", "dt6": "2024-05-01T12:30:00.123456",
		"ts": time.Date(2024, 5, 1, 10, 0, 0, 500e6, time.UTC), "da": "2024-02-29", "tm": "-838:59:59.50", "yr": int64(2155),
		"js": map[string]any{"a": []any{json.Number("1"), json.Number("2.50"), "x"}, "big": json.Number("12345678901234567890")},
		"en": "medium", "st": "a,c",
		"b1": true, "b12": []byte{0x0a, 0x01}, "bl": []byte{0, 0xff, 0x10}, "bn": []byte{1, 2, 0, 0}, "vb": []byte{0x0a, 0x0b},
		"tx": "text 😀 ü", "vc": "varchar 🚀", "ch": "ch",
		"zd": "0000-00-00", "zdt": "0000-00-00T00:00:00", "nul": nil,
		"gen": int64(4294967296), "gst": "varchar 🚀!",
	}
	for name, ch := range map[string]core.Change{"snapshot": snap[0], "stream": stream[0]} {
		for k, w := range want {
			got, ok := ch.After[k]
			if !ok {
				t.Errorf("%s: column %s missing", name, k)
				continue
			}
			if !reflect.DeepEqual(normal(got), normal(w)) {
				t.Errorf("%s: column %s = %#v, want %#v", name, k, got, w)
			}
		}
	}
}

// normal makes JSON numbers with equal text compare equal whatever their
// exact representation.
func normal(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	return string(b)
}
