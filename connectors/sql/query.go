package sql

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// Drivers of the driver field, and the database/sql driver names behind
// them.
const (
	DriverPostgres  = "postgres"
	DriverMySQL     = "mysql"
	DriverSQLite    = "sqlite"
	DriverSQLServer = "sqlserver"
	DriverOracle    = "oracle"
)

// Drivers lists the supported drivers.
func Drivers() []string {
	return []string{DriverPostgres, DriverMySQL, DriverSQLite, DriverSQLServer, DriverOracle}
}

// sqlDriverName maps a driver to its database/sql registration.
func sqlDriverName(driver string) string {
	switch driver {
	case DriverPostgres:
		return "pgx"
	case DriverMySQL:
		return "mysql"
	case DriverSQLite:
		return "sqlite"
	case DriverSQLServer:
		return "sqlserver"
	case DriverOracle:
		return "oracle"
	}
	return ""
}

// The named parameters a query may use.
const (
	ParamCursor = "cursor" // the lower bound, or the last row's cursor on later pages
	ParamKey    = "key"    // the last row's key, on later pages
	ParamLimit  = "limit"  // the page size
)

// queryVars is what a query template sees. Only structure depends on it;
// values travel as bind parameters.
type queryVars struct {
	// Cursor is true when the run has a lower bound (:cursor is set).
	Cursor bool
	// After is true on pages after the first: the query must return rows
	// after (:cursor, :key).
	After bool
}

// compiled is a query template with its parameter style.
type compiled struct {
	tmpl   *template.Template
	driver string
}

func compileQuery(name, text, driver string) (*compiled, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	c := &compiled{tmpl: t, driver: driver}
	// Render every shape once so that errors surface at configuration.
	for _, v := range []queryVars{{}, {Cursor: true}, {Cursor: true, After: true}} {
		if _, _, err := c.render(v, nil); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// render executes the template and rewrites :name parameters into the
// driver's placeholders, returning the SQL and the arguments in order.
func (c *compiled) render(v queryVars, values map[string]any) (string, []any, error) {
	var buf bytes.Buffer
	if err := c.tmpl.Execute(&buf, v); err != nil {
		return "", nil, err
	}
	return bindNamed(buf.String(), c.driver, values)
}

// bindNamed replaces :name parameters outside quotes and comments with
// placeholders. A "::" (a PostgreSQL cast) is left alone.
func bindNamed(q, driver string, values map[string]any) (string, []any, error) {
	var out strings.Builder
	var args []any
	numbered := map[string]int{}
	for i := 0; i < len(q); i++ {
		ch := q[i]
		switch {
		case ch == '\'' || ch == '"' || ch == '`':
			j := i + 1
			for j < len(q) && q[j] != ch {
				j++
			}
			out.WriteString(q[i:min(j+1, len(q))])
			i = j
		case ch == '-' && i+1 < len(q) && q[i+1] == '-':
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				j = len(q) - i
			}
			out.WriteString(q[i : i+j])
			i += j - 1
		case ch == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			end := len(q)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			out.WriteString(q[i:end])
			i = end - 1
		case ch == ':' && i+1 < len(q) && q[i+1] == ':':
			out.WriteString("::")
			i++
		case ch == ':' && i+1 < len(q) && isIdentStart(q[i+1]) && (i == 0 || !isIdentChar(q[i-1])):
			j := i + 1
			for j < len(q) && isIdentChar(q[j]) {
				j++
			}
			name := q[i+1 : j]
			switch name {
			case ParamCursor, ParamKey, ParamLimit:
			default:
				return "", nil, fmt.Errorf("unknown parameter :%s (use :cursor, :key, :limit)", name)
			}
			val := values[name]
			switch driver {
			case DriverPostgres, DriverSQLServer, DriverOracle:
				n, ok := numbered[name]
				if !ok {
					args = append(args, val)
					n = len(args)
					numbered[name] = n
				}
				switch driver {
				case DriverPostgres:
					out.WriteString("$" + strconv.Itoa(n))
				case DriverSQLServer:
					out.WriteString("@p" + strconv.Itoa(n))
				default:
					out.WriteString(":" + strconv.Itoa(n))
				}
			default:
				args = append(args, val)
				out.WriteByte('?')
			}
			i = j - 1
		default:
			out.WriteByte(ch)
		}
	}
	return out.String(), args, nil
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }

// limitClause is the driver's way to bound a result to :limit rows.
func limitClause(driver string) string {
	switch driver {
	case DriverSQLServer:
		return "OFFSET 0 ROWS FETCH NEXT :limit ROWS ONLY"
	case DriverOracle:
		return "FETCH FIRST :limit ROWS ONLY"
	}
	return "LIMIT :limit"
}

// generatedQuery builds the query template of a table-based configuration.
func generatedQuery(c *Config) string {
	var b strings.Builder
	b.WriteString("SELECT " + c.Columns + " FROM " + c.Table)
	var conds []string
	if c.Where != "" {
		conds = append(conds, "("+c.Where+")")
	}
	if c.Mode == ModeCursor {
		col, key := c.Cursor.Column, c.Key[0]
		// The leading >= lets every database use an index on the cursor
		// column for the keyset condition.
		conds = append(conds, "{{if .After}}"+col+" >= :cursor AND ("+col+" > :cursor OR ("+col+" = :cursor AND "+key+" > :key)){{else if .Cursor}}"+col+" >= :cursor{{else}}1 = 1{{end}}")
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	switch c.Mode {
	case ModeCursor:
		b.WriteString(" ORDER BY " + c.Cursor.Column + ", " + c.Key[0] + " " + limitClause(c.Driver))
	case ModeSnapshot:
		// A stable order lets the diff match rows against its index in
		// one sequential pass (rows moved by updates would otherwise be
		// looked up one by one).
		b.WriteString(" ORDER BY " + strings.Join(c.Key, ", "))
	}
	return b.String()
}
