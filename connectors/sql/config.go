package sql

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// The modes of the mode field.
const (
	ModeCursor   = "cursor"
	ModeSnapshot = "snapshot"
)

// Config is the sql_poll connector's configuration. Each field declares
// its key (see core.FieldsOf); the README's Configuration section says more.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	Driver              string        `yaml:"driver" required:"true" enum:"postgres,mysql,sqlite,sqlserver,oracle" doc:"Database driver, compiled in: postgres (pgx), mysql (MySQL and MariaDB), sqlite (modernc), sqlserver (go-mssqldb), oracle (go-ora)."`
	DSN                 string        `yaml:"dsn" required:"true" secret:"true" example:"${file:/run/secrets/orders_dsn}" doc:"Connection string in the driver's own syntax, such as postgres://user:pass@host:5432/db or user:pass@tcp(host:3306)/db."`
	Mode                string        `yaml:"mode" default:"cursor" enum:"cursor,snapshot" doc:"cursor reads rows changed at or after a watermark column; snapshot reads the whole result each run and emits creates, updates and deletes against a local index."`
	Table               string        `yaml:"table" example:"public.orders" doc:"Table or view read by the generated query; set table or query."`
	Columns             string        `yaml:"columns" default:"*" example:"id, status, total, updated_at" doc:"Select list of the generated query."`
	Where               string        `yaml:"where" example:"status <> 'draft'" doc:"Extra SQL condition of the generated query."`
	Query               string        `yaml:"query" doc:"Query replacing the generated one: a Go text/template whose {{if .Cursor}} and {{if .After}} choose the shape, with the bind parameters :cursor, :key and :limit (never spliced into the text)."`
	Key                 []string      `yaml:"key" required:"true" example:"[id]" doc:"Key columns identifying a row; in cursor mode exactly one, which also breaks ties between rows sharing a cursor value."`
	Cursor              CursorConfig  `yaml:"cursor" doc:"The watermark of cursor mode."`
	PageSize            int           `yaml:"page_size" default:"1000" doc:"Rows per page (:limit)."`
	QueryTimeout        time.Duration `yaml:"query_timeout" default:"5m0s" doc:"Longest one query may take."`
	MaxOpenConns        int           `yaml:"max_open_conns" default:"2" doc:"Most connections to the database."`
}

// CursorConfig is the watermark of cursor mode.
type CursorConfig struct {
	Column string `yaml:"column" example:"updated_at" doc:"Column holding the cursor: a last-modified timestamp or an increasing id."`
	Type   string `yaml:"type" default:"timestamp" enum:"timestamp,integer,string" doc:"Type of the cursor column."`
	// LookBack is a duration for timestamp cursors, a count for integer
	// cursors; lookBack parses it.
	LookBack string `yaml:"look_back" default:"0" example:"5m" doc:"How far below the watermark each run reads again, for rows committed late: a duration for timestamps (5m), a count for integers (1000). Rows read twice are emitted once."`
}

var identRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|` + "`[^`]+`" + `|\[[^\]]+\])(\.([A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|` + "`[^`]+`" + `|\[[^\]]+\]))*$`)

// lookBack parses cursor.look_back for the cursor type.
func (c *Config) lookBack() (time.Duration, int64, error) {
	return poll.ParseLookBack(poll.CursorKind(c.Cursor.Type), c.Cursor.LookBack)
}

// Validate reports every problem at once. It never quotes the DSN.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	if err := c.ScheduleConfig.Validate(); err != nil {
		errs = append(errs, err)
	}
	if sqlDriverName(c.Driver) == "" {
		add("driver", "%q is not one of %s", c.Driver, strings.Join(Drivers(), ", "))
	}
	if strings.TrimSpace(c.DSN) == "" {
		add("dsn", "is required (is its variable or file set?)")
	}
	switch c.Mode {
	case ModeCursor, ModeSnapshot:
	default:
		add("mode", "%q is not one of cursor, snapshot", c.Mode)
	}
	switch {
	case c.Table == "" && c.Query == "":
		add("table", "set table (and key, cursor.column) or query")
	case c.Table != "" && c.Query != "":
		add("query", "set table or query, not both")
	case c.Table != "" && !identRe.MatchString(c.Table):
		add("table", "%q is not a table name such as orders or sales.orders", c.Table)
	}
	if c.Query != "" && (c.Where != "" || c.Columns != "*") {
		add("query", "columns and where apply to the generated query only; put them in query")
	}
	if len(c.Key) == 0 {
		add("key", "is required: the column(s) identifying a row, such as [id]")
	}
	for i, k := range c.Key {
		if !identRe.MatchString(k) {
			add(fmt.Sprintf("key[%d]", i), "%q is not a column name", k)
		}
	}
	if c.Mode == ModeCursor {
		if len(c.Key) > 1 {
			add("key", "cursor mode needs exactly one key column, the tie-breaker of rows sharing a cursor value")
		}
		if c.Cursor.Column == "" {
			add("cursor.column", "is required in cursor mode: the last-modified timestamp or increasing id column")
		} else if !identRe.MatchString(c.Cursor.Column) {
			add("cursor.column", "%q is not a column name", c.Cursor.Column)
		}
		switch poll.CursorKind(c.Cursor.Type) {
		case poll.CursorTime, poll.CursorInt, poll.CursorString:
			if _, _, err := c.lookBack(); err != nil {
				add("cursor.look_back", "%v", err)
			}
		default:
			add("cursor.type", "%q is not one of timestamp, integer, string", c.Cursor.Type)
		}
	}
	if c.Query != "" {
		if _, err := compileQuery("query", c.Query, c.Driver); err != nil {
			add("query", "%v", err)
		}
		if c.Mode == ModeCursor && strings.Contains(c.Query, ":"+ParamLimit) && !strings.Contains(c.Query, ":"+ParamKey) {
			add("query", "a paged cursor query (:limit) must continue after (:cursor, :key) when .After is true, or pages would repeat")
		}
	}
	if c.PageSize < 1 || c.PageSize > 1_000_000 {
		add("page_size", "%d is out of range 1..1000000", c.PageSize)
	}
	if c.QueryTimeout < time.Second {
		add("query_timeout", "%s is too short: use at least 1s", c.QueryTimeout)
	}
	if c.MaxOpenConns < 1 {
		add("max_open_conns", "%d must be at least 1", c.MaxOpenConns)
	}
	return errors.Join(errs...)
}
