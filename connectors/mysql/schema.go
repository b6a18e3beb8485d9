package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// column is one column of a table as the schema history knows it: what
// decoding its binlog and snapshot values needs.
type column struct {
	Name string `json:"name"`
	// Type is the lowercase data type without arguments: int, varchar,
	// decimal, enum, json...
	Type     string `json:"type"`
	Unsigned bool   `json:"unsigned,omitempty"`
	// Length is the declared length: bits of a BIT, bytes of a BINARY,
	// fractional digits of a DATETIME, TIMESTAMP or TIME.
	Length int `json:"length,omitempty"`
	// Labels are the labels of an ENUM or SET, in declaration order.
	Labels []string `json:"labels,omitempty"`
	// Generated is set for a generated (computed) column.
	Generated bool `json:"generated,omitempty"`
}

// table is one table as the schema history knows it.
type table struct {
	DB      string   `json:"db"`
	Name    string   `json:"name"`
	Columns []column `json:"columns"`
	// Key are the primary key columns, in key order.
	Key []string `json:"key,omitempty"`
}

func (t *table) qualified() string { return t.DB + "." + t.Name }

func (t *table) colIndex(name string) int {
	return slices.IndexFunc(t.Columns, func(c column) bool { return strings.EqualFold(c.Name, name) })
}

func (t *table) clone() *table {
	c := *t
	c.Columns = slices.Clone(t.Columns)
	c.Key = slices.Clone(t.Key)
	return &c
}

// schema is the tables of the tracked databases at one point of the
// binlog, by lowercase "db.table".
type schema map[string]*table

func tableKey(db, name string) string { return strings.ToLower(db + "." + name) }

func (s schema) clone() schema {
	out := make(schema, len(s))
	for k, t := range s {
		out[k] = t // tables are copied on write
	}
	return out
}

// parseColumnType reads a column type as information_schema's COLUMN_TYPE
// or a DDL statement writes it: "int(10) unsigned", "decimal(10,2)",
// "enum('a','b')", "datetime(3)", "varchar(20)".
func parseColumnType(text string) (column, error) {
	toks, err := tokenize(text)
	if err != nil {
		return column{}, err
	}
	p := &parser{toks: toks, src: text}
	c, err := p.columnType()
	if err != nil {
		return column{}, err
	}
	return c, nil
}

// typeAliases maps synonyms to the data type information_schema reports.
var typeAliases = map[string]string{
	"integer": "int", "int4": "int", "int8": "bigint", "int1": "tinyint", "int2": "smallint", "int3": "mediumint",
	"middleint": "mediumint", "bool": "tinyint", "boolean": "tinyint", "dec": "decimal", "numeric": "decimal",
	"fixed": "decimal", "real": "double", "double precision": "double", "float4": "float", "float8": "double",
	"character": "char", "nchar": "char", "nvarchar": "varchar", "national": "char", "long": "mediumtext",
}

// knownTypes are the data types the decoder knows.
var knownTypes = map[string]bool{
	"tinyint": true, "smallint": true, "mediumint": true, "int": true, "bigint": true,
	"decimal": true, "float": true, "double": true, "bit": true,
	"date": true, "datetime": true, "timestamp": true, "time": true, "year": true,
	"char": true, "varchar": true, "tinytext": true, "text": true, "mediumtext": true, "longtext": true,
	"binary": true, "varbinary": true, "tinyblob": true, "blob": true, "mediumblob": true, "longblob": true,
	"enum": true, "set": true, "json": true, "uuid": true, "inet4": true, "inet6": true,
	"geometry": true, "point": true, "linestring": true, "polygon": true, "multipoint": true,
	"multilinestring": true, "multipolygon": true, "geometrycollection": true, "vector": true,
}

// loadSchema reads the tables of dbs from information_schema.
func loadSchema(ctx context.Context, q *sql.DB, dbs []string) (schema, error) {
	out := schema{}
	if len(dbs) == 0 {
		return out, nil
	}
	ph := strings.TrimSuffix(strings.Repeat("?,", len(dbs)), ",")
	args := make([]any, len(dbs))
	for i, d := range dbs {
		args[i] = d
	}
	rows, err := q.QueryContext(ctx, `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.DATA_TYPE, c.EXTRA,
			COALESCE(c.DATETIME_PRECISION, 0)
		FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
			ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE'
		WHERE c.TABLE_SCHEMA IN (`+ph+`) ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`, args...)
	if err != nil {
		return nil, fmt.Errorf("read the columns of databases %s: %w", strings.Join(dbs, ", "), err)
	}
	defer rows.Close()
	for rows.Next() {
		var db, tb, name, ctype, dtype, extra string
		var fsp int
		if err := rows.Scan(&db, &tb, &name, &ctype, &dtype, &extra, &fsp); err != nil {
			return nil, err
		}
		c, err := parseColumnType(ctype)
		if err != nil {
			return nil, fmt.Errorf("column %s of %s.%s has type %q the connector cannot read: %w", name, db, tb, ctype, err)
		}
		c.Name = name
		if c.Type == "datetime" || c.Type == "timestamp" || c.Type == "time" {
			c.Length = fsp
		}
		ex := strings.ToUpper(extra)
		c.Generated = strings.Contains(ex, "GENERATED") || strings.Contains(ex, "PERSISTENT") || strings.Contains(ex, "VIRTUAL")
		k := tableKey(db, tb)
		t := out[k]
		if t == nil {
			t = &table{DB: db, Name: tb}
			out[k] = t
		}
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	keys, err := q.QueryContext(ctx, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE CONSTRAINT_NAME = 'PRIMARY' AND TABLE_SCHEMA IN (`+ph+`) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args...)
	if err != nil {
		return nil, fmt.Errorf("read the primary keys of databases %s: %w", strings.Join(dbs, ", "), err)
	}
	defer keys.Close()
	for keys.Next() {
		var db, tb, name string
		if err := keys.Scan(&db, &tb, &name); err != nil {
			return nil, err
		}
		if t := out[tableKey(db, tb)]; t != nil {
			t.Key = append(t.Key, name)
		}
	}
	if err := keys.Err(); err != nil {
		return nil, err
	}
	// MariaDB's JSON is LONGTEXT with a json_valid check.
	checks, err := q.QueryContext(ctx, `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA IN (`+ph+`) AND CHECK_CLAUSE LIKE 'json_valid(%'`, args...)
	if err == nil {
		defer checks.Close()
		for checks.Next() {
			var db, tb, clause string
			if checks.Scan(&db, &tb, &clause) != nil {
				continue
			}
			t := out[tableKey(db, tb)]
			col := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(clause, "json_valid("), ")"), "`")
			if t == nil {
				continue
			}
			if i := t.colIndex(col); i >= 0 && strings.HasSuffix(t.Columns[i].Type, "text") {
				t.Columns[i].Type = "json"
			}
		}
	}
	return out, nil
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func itoa(i int) string { return strconv.Itoa(i) }
