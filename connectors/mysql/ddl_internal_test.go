package mysql

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func testSchema() schema {
	return schema{
		"shop.orders": {DB: "shop", Name: "orders", Key: []string{"id"}, Columns: []column{
			{Name: "id", Type: "int"}, {Name: "total", Type: "decimal"}, {Name: "status", Type: "varchar"},
		}},
		"shop.lines": {DB: "shop", Name: "lines", Key: []string{"order_id", "n"}, Columns: []column{
			{Name: "order_id", Type: "int"}, {Name: "n", Type: "int"},
		}},
	}
}

func testApplier() ddlApplier {
	return ddlApplier{
		tracked:  func(db string) bool { return strings.EqualFold(db, "shop") },
		captured: func(db, t string) bool { return strings.EqualFold(db, "shop") && !strings.EqualFold(t, "scratch") },
	}
}

func colsOf(t *table) string {
	var b []string
	for _, c := range t.Columns {
		s := c.Name + ":" + c.Type
		if c.Unsigned {
			s += "+u"
		}
		if len(c.Labels) > 0 {
			s += "(" + strings.Join(c.Labels, "|") + ")"
		}
		if c.Generated {
			s += "+g"
		}
		b = append(b, s)
	}
	return strings.Join(b, " ") + " key=" + strings.Join(t.Key, ",")
}

func TestApplyDDL(t *testing.T) {
	tests := []struct {
		name  string
		stmt  string
		table string // db.table to look at after
		want  string // its columns, "" when it must be gone
		kinds string
	}{
		{"add column", "ALTER TABLE orders ADD COLUMN note TEXT", "shop.orders", "id:int total:decimal status:varchar note:text key=id", "alter"},
		{"add first and after", "ALTER TABLE `orders` ADD a INT FIRST, ADD b BIGINT UNSIGNED AFTER total", "shop.orders", "a:int id:int total:decimal b:bigint+u status:varchar key=id", "alter"},
		{"add several", "alter table shop.orders add (x int, y json)", "shop.orders", "id:int total:decimal status:varchar x:int y:json key=id", "alter"},
		{"drop column", "ALTER TABLE orders DROP COLUMN status", "shop.orders", "id:int total:decimal key=id", "alter"},
		{"drop key column", "ALTER TABLE lines DROP n", "shop.lines", "order_id:int key=order_id", "alter"},
		{"modify", "ALTER TABLE orders MODIFY status ENUM('new','paid') NOT NULL DEFAULT 'new' FIRST", "shop.orders", "status:enum(new|paid) id:int total:decimal key=id", "alter"},
		{"change", "ALTER TABLE orders CHANGE COLUMN id order_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT", "shop.orders", "order_id:bigint+u total:decimal status:varchar key=order_id", "alter"},
		{"rename column", "ALTER TABLE orders RENAME COLUMN status TO state", "shop.orders", "id:int total:decimal state:varchar key=id", "alter"},
		{"options and indexes", "ALTER TABLE orders ADD INDEX (status), ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE, ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES x(id), COMMENT 'first'", "shop.orders", "id:int total:decimal status:varchar key=id", "alter"},
		{"primary key", "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (status, id)", "shop.orders", "id:int total:decimal status:varchar key=status,id", "alter"},
		{"generated", "ALTER TABLE orders ADD g INT GENERATED ALWAYS AS (id * 2) STORED, ADD h INT AS (id + 1) VIRTUAL", "shop.orders", "id:int total:decimal status:varchar g:int+g h:int+g key=id", "alter"},
		{"rename table", "RENAME TABLE orders TO orders_old, lines TO shop.lines2", "shop.orders_old", "id:int total:decimal status:varchar key=id", "rename rename"},
		{"alter rename", "ALTER TABLE orders RENAME TO archive", "shop.archive", "id:int total:decimal status:varchar key=id", "rename"},
		{"old name gone", "RENAME TABLE orders TO o2", "shop.orders", "", "rename"},
		{"create", "CREATE TABLE IF NOT EXISTS items (id INT UNSIGNED NOT NULL AUTO_INCREMENT, sku VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, data BLOB, flag BOOL, PRIMARY KEY (id), UNIQUE KEY (sku)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4", "shop.items", "id:int+u sku:varchar data:blob flag:tinyint key=id", "create"},
		{"create inline key", "CREATE TABLE t2 (id BIGINT PRIMARY KEY, b BIT(3), c CHAR(2) CHARACTER SET binary, d DOUBLE PRECISION, e SET('a','it''s'))", "shop.t2", "id:bigint b:bit c:binary d:double e:set(a|it's) key=id", "create"},
		{"create like", "CREATE TABLE o3 LIKE orders", "shop.o3", "id:int total:decimal status:varchar key=id", "create"},
		{"executable comment", "/*!40000 ALTER TABLE orders ADD z INT */", "shop.orders", "id:int total:decimal status:varchar z:int key=id", "alter"},
		{"drop table", "DROP TABLE IF EXISTS orders, nothere", "shop.orders", "", "drop"},
		{"drop database", "DROP DATABASE shop", "shop.lines", "", "drop drop"},
		{"truncate", "TRUNCATE orders", "shop.orders", "id:int total:decimal status:varchar key=id", "truncate"},
		{"other database", "ALTER TABLE other.orders ADD x INT", "shop.orders", "id:int total:decimal status:varchar key=id", ""},
		{"not a table statement", "GRANT SELECT ON *.* TO x", "shop.orders", "id:int total:decimal status:varchar key=id", ""},
		{"create index", "CREATE INDEX i ON orders (status)", "shop.orders", "id:int total:decimal status:varchar key=id", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testSchema()
			snap, _ := json.Marshal(before)
			out, effects, err := testApplier().apply(before, "shop", tc.stmt)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := json.Marshal(before); string(again) != string(snap) {
				t.Fatalf("the schema applied to changed: %s", again)
			}
			got := ""
			if tb := out[tc.table]; tb != nil {
				got = colsOf(tb)
			}
			if got != tc.want {
				t.Fatalf("%s:\n got  %s\n want %s", tc.table, got, tc.want)
			}
			var kinds []string
			for _, e := range effects {
				kinds = append(kinds, e.Kind)
			}
			if strings.Join(kinds, " ") != tc.kinds {
				t.Fatalf("effects %+v, want %s", effects, tc.kinds)
			}
		})
	}
}

func TestApplyDDLErrors(t *testing.T) {
	tests := []struct {
		name, stmt string
	}{
		{"unknown column", "ALTER TABLE orders DROP COLUMN nothere"},
		{"unknown type", "ALTER TABLE orders ADD x FANCYTYPE"},
		{"unknown spec", "ALTER TABLE orders FROBNICATE"},
		{"system versioning", "ALTER TABLE orders ADD SYSTEM VERSIONING"},
		{"create select", "CREATE TABLE orders2 (id INT) SELECT 1"},
		{"unterminated", "ALTER TABLE orders ADD x ENUM('a"},
		{"after unknown", "ALTER TABLE orders ADD x INT AFTER nothere"},
		{"unknown captured table", "ALTER TABLE ghost ADD x INT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := testApplier().apply(testSchema(), "shop", tc.stmt)
			var de *ddlError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.stmt[:10]) {
				t.Fatalf("apply(%q) = %v, want an error naming the statement", tc.stmt, err)
			}
		})
	}
	// An uncaptured table the parser cannot follow is forgotten, not an
	// error.
	s := testSchema()
	s["shop.scratch"] = &table{DB: "shop", Name: "scratch", Columns: []column{{Name: "a", Type: "int"}}}
	out, _, err := testApplier().apply(s, "shop", "ALTER TABLE scratch FROBNICATE")
	if err != nil || out["shop.scratch"] != nil {
		t.Fatalf("uncaptured: %v, %v", err, out["shop.scratch"])
	}
}

func TestParseColumnType(t *testing.T) {
	tests := []struct {
		text string
		want column
	}{
		{"int(10) unsigned", column{Type: "int", Unsigned: true}},
		{"bigint(20) unsigned zerofill", column{Type: "bigint", Unsigned: true}},
		{"decimal(10,2)", column{Type: "decimal"}},
		{"enum('a','b,c','d''e')", column{Type: "enum", Labels: []string{"a", "b,c", "d'e"}}},
		{"bit(12)", column{Type: "bit", Length: 12}},
		{"binary(16)", column{Type: "binary", Length: 16}},
		{"datetime(6)", column{Type: "datetime", Length: 6}},
		{"tinyint(1)", column{Type: "tinyint"}},
		{"varchar(20)", column{Type: "varchar"}},
		{"longtext", column{Type: "longtext"}},
		{"char(36) character set binary", column{Type: "binary"}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			got, err := parseColumnType(tc.text)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseColumnType = %+v, %v", got, err)
			}
		})
	}
}

// FuzzApplyDDL: whatever the statement, apply does not panic, leaves the
// schema it was given unchanged, and either fails with an error naming the
// statement or yields tables whose keys name their own columns.
func FuzzApplyDDL(f *testing.F) {
	for _, s := range []string{
		"ALTER TABLE orders ADD COLUMN note TEXT AFTER id",
		"ALTER TABLE orders CHANGE id oid BIGINT, DROP status, ADD PRIMARY KEY (oid)",
		"CREATE TABLE t (a INT PRIMARY KEY, b ENUM('x','y'), KEY (b))",
		"RENAME TABLE orders TO o, lines TO orders",
		"DROP TABLE lines",
		"/*!50100 ALTER TABLE orders ADD x INT */ -- c",
		"ALTER TABLE orders MODIFY total DECIMAL(10,2) FIRST",
		"CREATE TABLE c LIKE orders",
		"ALTER TABLE lines RENAME COLUMN n TO m",
		"TRUNCATE TABLE orders",
		"ALTER TABLE `a``b` ADD `c d` INT",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stmt string) {
		before := testSchema()
		snap, _ := json.Marshal(before)
		out, _, err := testApplier().apply(before, "shop", stmt)
		if again, _ := json.Marshal(before); string(again) != string(snap) {
			t.Fatalf("apply(%q) changed the schema it was given", stmt)
		}
		if err != nil {
			var de *ddlError
			if !errors.As(err, &de) {
				t.Fatalf("apply(%q) = %v, not a ddlError", stmt, err)
			}
			return
		}
		for k, tb := range out {
			if k != tableKey(tb.DB, tb.Name) {
				t.Fatalf("apply(%q): table %s.%s under key %s", stmt, tb.DB, tb.Name, k)
			}
			for _, key := range tb.Key {
				if tb.colIndex(key) < 0 && len(tb.Columns) > 0 && strings.HasPrefix(strings.ToUpper(strings.TrimSpace(stmt)), "ALTER") {
					// A key naming no column after ALTER means the parser
					// lost track of a rename or drop.
					t.Fatalf("apply(%q): key %v of %s names no column of %s", stmt, tb.Key, k, colsOf(tb))
				}
			}
		}
	})
}
