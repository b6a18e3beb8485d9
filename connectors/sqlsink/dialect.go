package sqlsink

import (
	"strconv"
	"strings"
)

// dialect writes the statements of one database. Every name in a
// statement is quoted; every value is a bind parameter, never spliced into
// the text.
type dialect struct {
	driver string
	// sqlDriver is the database/sql driver name.
	sqlDriver string
	// maxParams is the most bind parameters one statement may carry.
	maxParams int
	// savepoints: a failed statement aborts the transaction unless it was
	// made under a savepoint (PostgreSQL). Elsewhere a failed statement
	// is undone alone and the transaction goes on.
	savepoints bool
	// foldsCase: the database matches column names whatever their case.
	foldsCase bool
}

func dialectOf(driver string) dialect {
	switch driver {
	case DriverPostgres:
		return dialect{driver: driver, sqlDriver: "pgx", maxParams: 65535, savepoints: true}
	case DriverMySQL:
		return dialect{driver: driver, sqlDriver: "mysql", maxParams: 65535, foldsCase: true}
	case DriverSQLServer:
		return dialect{driver: driver, sqlDriver: "sqlserver", maxParams: 2000, savepoints: true, foldsCase: true}
	default:
		return dialect{driver: DriverSQLite, sqlDriver: "sqlite", maxParams: 32766, foldsCase: true}
	}
}

// table is what statements are made of: the table and the columns every
// row writes, in order.
type table struct {
	// name is the configured table name, schema.table or table.
	name string
	cols []column
	// id is the index in cols of the event id column, or -1.
	id int
	// key holds the indexes in cols of the key columns (upsert), or the
	// id column's (insert).
	key []int
	// version is the index in cols of the version column (upsert), or -1.
	version int
	upsert  bool
}

// column is a column written by every row.
type column struct {
	name    string
	typ     string
	sqlType string
}

// quote quotes a name of the table: "name" ([name] on SQL Server,
// `name` on MySQL).
func (d dialect) quote(name string) string {
	switch d.driver {
	case DriverMySQL:
		return "`" + name + "`"
	case DriverSQLServer:
		return "[" + name + "]"
	}
	return `"` + name + `"`
}

// tableName quotes the table name, each part on its own.
func (d dialect) tableName(t *table) string {
	parts := strings.Split(t.name, ".")
	for i, p := range parts {
		parts[i] = d.quote(p)
	}
	return strings.Join(parts, ".")
}

// bareTable is the table's name without its schema, quoted: how SQLite's
// upsert refers to the row in place.
func (d dialect) bareTable(t *table) string {
	parts := strings.Split(t.name, ".")
	return d.quote(parts[len(parts)-1])
}

// param returns the n-th bind parameter (from 1).
func (d dialect) param(n int) string {
	switch d.driver {
	case DriverPostgres:
		return "$" + strconv.Itoa(n)
	case DriverSQLServer:
		return "@p" + strconv.Itoa(n)
	}
	return "?"
}

// rowsPerStatement is how many rows of t one statement carries at most,
// given the configured bound.
func (d dialect) rowsPerStatement(t *table, bound int) int {
	if d.driver == DriverPostgres {
		// unnest takes one array per column, of any length.
		return max(1, bound)
	}
	return max(1, min(bound, d.maxParams/len(t.cols)))
}

// columnList returns the quoted columns, with prefix before each.
func (d dialect) columnList(t *table, prefix string) string {
	var b strings.Builder
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prefix)
		b.WriteString(d.quote(c.name))
	}
	return b.String()
}

// values returns rows tuples of parameters, numbered from 1.
func (d dialect) values(t *table, rows int) string {
	var b strings.Builder
	n := 0
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range t.cols {
			if i > 0 {
				b.WriteString(", ")
			}
			n++
			b.WriteString(d.param(n))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// write returns the statement writing rows rows of t: an insert that
// leaves a row whose id is there already as it is, or an upsert that
// updates the row of a key only when the new row's version is not older.
// The rows of one statement never share a key (or an id).
func (d dialect) write(t *table, rows int) string {
	if d.driver == DriverSQLServer {
		return d.merge(t, rows)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(d.tableName(t))
	if d.driver == DriverPostgres {
		b.WriteString(" AS t")
	}
	b.WriteString(" (")
	b.WriteString(d.columnList(t, ""))
	if d.driver == DriverPostgres {
		b.WriteString(") ")
		b.WriteString(d.unnest(t))
	} else {
		b.WriteString(") VALUES ")
		b.WriteString(d.values(t, rows))
	}
	if d.driver == DriverMySQL {
		b.WriteString(d.mysqlConflict(t))
		return b.String()
	}
	b.WriteString(" ON CONFLICT (")
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(t.cols[k].name))
	}
	if !t.upsert {
		b.WriteString(") DO NOTHING")
		return b.String()
	}
	b.WriteString(") DO UPDATE SET ")
	first := true
	for i, c := range t.cols {
		if t.isKey(i) {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		q := d.quote(c.name)
		b.WriteString(q + " = excluded." + q)
	}
	row := "t"
	if d.driver == DriverSQLite {
		row = d.bareTable(t)
	}
	v := d.quote(t.cols[t.version].name)
	b.WriteString(" WHERE " + row + "." + v + " IS NULL OR " + row + "." + v + " <= excluded." + v)
	return b.String()
}

// unnest is PostgreSQL's row source: one text array per column, each
// element cast to its column's type, so that the statement's text is the
// same whatever its number of rows (parsed and planned once per
// connection) and its parameters are a handful of arrays.
func (d dialect) unnest(t *table) string {
	var sel, args, names strings.Builder
	for i, c := range t.cols {
		if i > 0 {
			sel.WriteString(", ")
			args.WriteString(", ")
			names.WriteString(", ")
		}
		name := "c" + strconv.Itoa(i+1)
		sel.WriteString(name)
		if cast := pgCast[c.typ]; cast != "" {
			sel.WriteString("::" + cast)
		}
		args.WriteString(d.param(i+1) + "::text[]")
		names.WriteString(name)
	}
	return "SELECT " + sel.String() + " FROM unnest(" + args.String() + ") AS u(" + names.String() + ")"
}

// pgCast is the type a text element of unnest is cast to, by column type.
var pgCast = map[string]string{
	TypeInteger:   "int8",
	TypeDecimal:   "numeric",
	TypeDouble:    "float8",
	TypeBoolean:   "bool",
	TypeTimestamp: "timestamptz",
	TypeJSON:      "jsonb",
}

// mysqlConflict is MySQL's ON DUPLICATE KEY UPDATE clause. An insert sets
// the id to itself: INSERT IGNORE would also turn errors of bad values
// into warnings and write them. An upsert sets each column to the new
// value only when the row's version is not newer; the version is set last,
// since MySQL assigns left to right and a later test would see it new.
func (d dialect) mysqlConflict(t *table) string {
	if !t.upsert {
		q := d.quote(t.cols[t.id].name)
		return " ON DUPLICATE KEY UPDATE " + q + " = " + q
	}
	v := d.quote(t.cols[t.version].name)
	newer := v + " IS NULL OR " + v + " <= VALUES(" + v + ")"
	var sets []string
	for i, c := range t.cols {
		if t.isKey(i) || i == t.version {
			continue
		}
		q := d.quote(c.name)
		sets = append(sets, q+" = IF("+newer+", VALUES("+q+"), "+q+")")
	}
	sets = append(sets, v+" = IF("+newer+", VALUES("+v+"), "+v+")")
	return " ON DUPLICATE KEY UPDATE " + strings.Join(sets, ", ")
}

// merge is SQL Server's write: a MERGE of the rows as a derived table,
// holding the key range so that two Writes cannot both insert one key.
func (d dialect) merge(t *table, rows int) string {
	var b strings.Builder
	b.WriteString("MERGE INTO ")
	b.WriteString(d.tableName(t))
	b.WriteString(" WITH (HOLDLOCK) AS t USING (VALUES ")
	b.WriteString(d.values(t, rows))
	b.WriteString(") AS s (")
	b.WriteString(d.columnList(t, ""))
	b.WriteString(") ON ")
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		q := d.quote(t.cols[k].name)
		b.WriteString("t." + q + " = s." + q)
	}
	if t.upsert {
		v := d.quote(t.cols[t.version].name)
		b.WriteString(" WHEN MATCHED AND (t." + v + " IS NULL OR t." + v + " <= s." + v + ") THEN UPDATE SET ")
		first := true
		for i, c := range t.cols {
			if t.isKey(i) {
				continue
			}
			if !first {
				b.WriteString(", ")
			}
			first = false
			q := d.quote(c.name)
			b.WriteString(q + " = s." + q)
		}
	}
	b.WriteString(" WHEN NOT MATCHED THEN INSERT (")
	b.WriteString(d.columnList(t, ""))
	b.WriteString(") VALUES (")
	b.WriteString(d.columnList(t, "s."))
	b.WriteString(");")
	return b.String()
}

// remove returns the statement deleting the row of one key, unless its
// version is newer than the deleting event's. Its parameters are the key
// values, in order, then the version.
func (d dialect) remove(t *table) string {
	var b strings.Builder
	b.WriteString("DELETE FROM ")
	b.WriteString(d.tableName(t))
	b.WriteString(" WHERE ")
	n := 0
	for _, k := range t.key {
		n++
		b.WriteString(d.quote(t.cols[k].name) + " = " + d.param(n) + " AND ")
	}
	v := d.quote(t.cols[t.version].name)
	b.WriteString("(" + v + " IS NULL OR " + v + " <= " + d.param(n+1) + ")")
	return b.String()
}

// probe returns a query that reads no row and shows the table's columns.
func (d dialect) probe(t *table) string {
	if d.driver == DriverSQLServer {
		return "SELECT TOP 0 * FROM " + d.tableName(t)
	}
	return "SELECT * FROM " + d.tableName(t) + " WHERE 1 = 0"
}

// createTable returns the statement creating t when it is missing, with
// its key as primary key.
func (d dialect) createTable(t *table) string {
	var b strings.Builder
	if d.driver == DriverSQLServer {
		b.WriteString("IF OBJECT_ID(N'" + strings.ReplaceAll(t.name, "'", "''") + "', N'U') IS NULL CREATE TABLE ")
	} else {
		b.WriteString("CREATE TABLE IF NOT EXISTS ")
	}
	b.WriteString(d.tableName(t))
	b.WriteString(" (")
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(c.name) + " " + d.columnType(c, t.isKey(i)))
		if t.isKey(i) {
			b.WriteString(" NOT NULL")
		}
	}
	b.WriteString(", PRIMARY KEY (")
	for i, k := range t.key {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.quote(t.cols[k].name))
	}
	b.WriteString("))")
	return b.String()
}

// columnType is the type create_table gives a column: its sql_type, or
// the dialect's type for its type. A text key gets a bounded type where
// the database cannot index unbounded text.
func (d dialect) columnType(c column, key bool) string {
	if c.sqlType != "" {
		return c.sqlType
	}
	types := map[string][4]string{
		//              postgres            mysql             sqlite     sqlserver
		TypeText:      {"TEXT", "TEXT", "TEXT", "NVARCHAR(MAX)"},
		TypeInteger:   {"BIGINT", "BIGINT", "INTEGER", "BIGINT"},
		TypeDecimal:   {"NUMERIC", "DECIMAL(38,10)", "TEXT", "DECIMAL(38,10)"},
		TypeDouble:    {"DOUBLE PRECISION", "DOUBLE", "REAL", "FLOAT"},
		TypeBoolean:   {"BOOLEAN", "BOOLEAN", "INTEGER", "BIT"},
		TypeTimestamp: {"TIMESTAMPTZ", "DATETIME(6)", "TEXT", "DATETIMEOFFSET(7)"},
		TypeJSON:      {"JSONB", "JSON", "TEXT", "NVARCHAR(MAX)"},
	}
	i := map[string]int{DriverPostgres: 0, DriverMySQL: 1, DriverSQLite: 2, DriverSQLServer: 3}[d.driver]
	if key && c.typ == TypeText {
		switch d.driver {
		case DriverMySQL:
			return "VARCHAR(255)"
		case DriverSQLServer:
			return "NVARCHAR(450)"
		}
	}
	return types[c.typ][i]
}

// isKey reports whether the column at i is one of the key's.
func (t *table) isKey(i int) bool {
	for _, k := range t.key {
		if k == i {
			return true
		}
	}
	return false
}

// savepoint marks where a statement starts, so that its failure can be
// undone alone.
func (d dialect) savepoint() string {
	if d.driver == DriverSQLServer {
		return "SAVE TRANSACTION tributary_row"
	}
	return "SAVEPOINT tributary_row"
}

// rollbackTo undoes the statement since savepoint.
func (d dialect) rollbackTo() string {
	if d.driver == DriverSQLServer {
		return "ROLLBACK TRANSACTION tributary_row"
	}
	return "ROLLBACK TO SAVEPOINT tributary_row"
}
