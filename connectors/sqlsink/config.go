package sqlsink

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/tributary/tributary/core"
)

// The databases of the driver field.
const (
	DriverPostgres  = "postgres"
	DriverMySQL     = "mysql"
	DriverSQLite    = "sqlite"
	DriverSQLServer = "sqlserver"
)

// The modes of the mode field.
const (
	// ModeInsert appends one row per event, once per event id: the id
	// column is a unique key and a row whose id is already there is left
	// as it is.
	ModeInsert = "insert"
	// ModeUpsert keeps one row per key, the latest state: a row is
	// inserted, or updated when the event's version is not older than the
	// row's, or deleted when delete_when holds.
	ModeUpsert = "upsert"
)

// The column types of a column's type field.
const (
	TypeText      = "text"
	TypeInteger   = "integer"
	TypeDecimal   = "decimal"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeJSON      = "json"
)

var columnTypes = []string{TypeText, TypeInteger, TypeDecimal, TypeDouble, TypeBoolean, TypeTimestamp, TypeJSON}

// Config is the sql sink's configuration. Each field declares its key (see
// core.FieldsOf); the README's Configuration section says more.
type Config struct {
	Driver      string   `yaml:"driver" required:"true" enum:"postgres,mysql,sqlite,sqlserver" doc:"Database driver, compiled in: postgres (pgx), mysql (MySQL and MariaDB), sqlite (modernc), sqlserver (go-mssqldb)."`
	DSN         string   `yaml:"dsn" required:"true" secret:"true" example:"${file:/run/secrets/erp_dsn}" doc:"Connection string in the driver's own syntax, such as postgres://user:pass@host:5432/db or user:pass@tcp(host:3306)/db; for sqlite a file, relative to the sink's state directory."`
	Table       string   `yaml:"table" required:"true" example:"erp.order_inbox" doc:"Table written to, optionally with its schema (schema.table)."`
	Mode        string   `yaml:"mode" default:"insert" enum:"insert,upsert" doc:"insert appends one row per event, once per event id; upsert keeps the latest row per key, where an older event never overwrites a newer one."`
	IDColumn    string   `yaml:"id_column" default:"event_id" doc:"Column holding the event id: the unique key of insert mode; in upsert mode the id of the event that last wrote the row. Empty in upsert mode writes no id."`
	Columns     []Column `yaml:"columns" required:"true" doc:"The table's columns, each with the expression giving its value and its type."`
	Key         []string `yaml:"key" example:"[order_id]" doc:"upsert: the columns (named in columns) whose values identify a row; the table needs a unique key or primary key on them."`
	Version     string   `yaml:"version" example:"updated_at" doc:"upsert: the column (named in columns) whose value orders the events of a key, a version or a time; a row is only updated or deleted by an event whose version is at least the row's."`
	DeleteWhen  string   `yaml:"delete_when" example:"event.type == \"com.example.order.deleted\"" doc:"upsert: a condition over the event; when it holds, the row of the event's key is deleted instead of written."`
	CreateTable bool     `yaml:"create_table" default:"false" doc:"Create the table from columns when it is missing (a quick start); otherwise Open checks that the table has every column and names the first one missing."`
	MaxConns    int      `yaml:"max_open_conns" default:"4" doc:"Most connections to the database; each Write holds one for its transaction."`
	StmtRows    int      `yaml:"rows_per_statement" default:"500" doc:"Most rows one INSERT statement carries; a batch larger than that takes several statements in its one transaction."`
}

// Column is one column of the table and the value an event gives it.
type Column struct {
	Name    string `yaml:"name" required:"true" example:"order_id" doc:"Column name."`
	Value   string `yaml:"value" required:"true" example:"event.data.order_id" doc:"Expression over the event giving the column's value, such as event.data.total or event.time; null leaves the column NULL."`
	Type    string `yaml:"type" default:"text" enum:"text,integer,decimal,double,boolean,timestamp,json" doc:"How the value is converted: decimal stays exact (written as its decimal text), timestamp is written in UTC, json is written as JSON text to a JSON column."`
	SQLType string `yaml:"sql_type" example:"NUMERIC(12,2)" doc:"Column type create_table gives the column, replacing the one type gives it (see the README's table of types)."`
}

// identRe matches a column name: letters, digits and underscores, not
// starting with a digit. Names are quoted in statements, so a name that
// is a keyword is fine.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// tableRe matches a table name, optionally with its schema.
var tableRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// sqlTypeRe matches a column type a user may give create_table: words,
// digits, spaces, commas and parentheses, nothing that ends a statement.
var sqlTypeRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_ ]*(\([0-9, A-Za-z]*\))?( [A-Za-z ]+)?$`)

// Validate reports every problem at once, filling the defaults of the
// columns' types. It never quotes the DSN. The expressions are compiled
// by the sink's Configure.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	switch c.Driver {
	case DriverPostgres, DriverMySQL, DriverSQLite, DriverSQLServer:
	default:
		add("driver", "%q is not one of postgres, mysql, sqlite, sqlserver", c.Driver)
	}
	if strings.TrimSpace(c.DSN) == "" {
		add("dsn", "is empty (is its variable or file set?)")
	}
	if !tableRe.MatchString(c.Table) {
		add("table", "%q is not a table name such as orders or erp.orders (letters, digits and underscores)", c.Table)
	}
	if c.MaxConns < 1 {
		add("max_open_conns", "is %d; give at least 1", c.MaxConns)
	}
	if c.StmtRows < 1 {
		add("rows_per_statement", "is %d; give at least 1", c.StmtRows)
	}
	names := c.validateColumns(add)
	if c.IDColumn != "" {
		switch {
		case !identRe.MatchString(c.IDColumn):
			add("id_column", "%q is not a column name (letters, digits and underscores)", c.IDColumn)
		case slices.Contains(names, c.IDColumn):
			add("id_column", "%q is also in columns: the sink writes the event id there itself; rename one of them", c.IDColumn)
		}
	}
	switch c.Mode {
	case ModeInsert:
		if c.IDColumn == "" {
			add("id_column", "is empty: insert mode needs a column holding the event id, its unique key, so that a delivery made again adds no row")
		}
		for _, k := range []struct{ key, value string }{{"key", strings.Join(c.Key, ",")}, {"version", c.Version}, {"delete_when", c.DeleteWhen}} {
			if k.value != "" {
				add(k.key, "is for mode: upsert; insert mode identifies rows by id_column")
			}
		}
	case ModeUpsert:
		if len(c.Key) == 0 {
			add("key", "is required with mode: upsert: name the columns whose values identify a row, such as [order_id]")
		}
		for i, k := range c.Key {
			if !slices.Contains(names, k) {
				add(fmt.Sprintf("key[%d]", i), "%q is not one of the columns", k)
			}
		}
		switch {
		case c.Version == "":
			add("version", "is required with mode: upsert: name the column (a version or a time) that says which of two events of a key is newer, so that an older one never overwrites a newer one")
		case !slices.Contains(names, c.Version):
			add("version", "%q is not one of the columns", c.Version)
		case slices.Contains(c.Key, c.Version):
			add("version", "%q is a key column; the version must be another column", c.Version)
		}
	default:
		add("mode", "%q is not one of insert, upsert", c.Mode)
	}
	return errors.Join(errs...)
}

// validateColumns checks the columns and returns their names.
func (c *Config) validateColumns(add func(path, format string, args ...any)) []string {
	if len(c.Columns) == 0 {
		add("columns", "is empty: list the table's columns, each with a name and the value expression that fills it")
	}
	var names []string
	for i := range c.Columns {
		col := &c.Columns[i]
		path := fmt.Sprintf("columns[%d]", i)
		if col.Type == "" {
			col.Type = TypeText
		}
		switch {
		case !identRe.MatchString(col.Name):
			add(path+".name", "%q is not a column name (letters, digits and underscores)", col.Name)
		case slices.Contains(names, col.Name):
			add(path+".name", "%q is listed twice", col.Name)
		}
		names = append(names, col.Name)
		if strings.TrimSpace(col.Value) == "" {
			add(path+".value", "is empty: give the expression of the column's value, such as event.data.%s", col.Name)
		}
		if !slices.Contains(columnTypes, col.Type) {
			add(path+".type", "%q is not one of %s", col.Type, strings.Join(columnTypes, ", "))
		}
		if col.SQLType != "" && !sqlTypeRe.MatchString(col.SQLType) {
			add(path+".sql_type", "%q is not a column type such as NUMERIC(12,2) or VARCHAR(64)", col.SQLType)
		}
	}
	return names
}
