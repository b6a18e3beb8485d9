package sql

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
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

// Defaults.
const (
	DefaultPageSize     = 1000
	DefaultQueryTimeout = 5 * time.Minute
	DefaultMaxOpenConns = 2
)

// Config is the sql_poll connector's configuration.
type Config struct {
	poll.ScheduleConfig `yaml:",inline"`
	// Driver is one of postgres, mysql, sqlite, sqlserver, oracle.
	Driver string `yaml:"driver"`
	// DSN is the driver's connection string. Secret.
	DSN string `yaml:"dsn"`
	// Mode is cursor or snapshot.
	Mode string `yaml:"mode"`
	// Table is the table (or view) read by the generated query.
	Table string `yaml:"table"`
	// Columns is the select list of the generated query.
	Columns string `yaml:"columns"`
	// Where is an extra condition of the generated query.
	Where string `yaml:"where"`
	// Query replaces the generated query: a text/template over .Cursor and
	// .After with the bind parameters :cursor, :key and :limit.
	Query string `yaml:"query"`
	// Key lists the key columns.
	Key []string `yaml:"key"`
	// Cursor configures the watermark in cursor mode.
	Cursor CursorConfig `yaml:"cursor"`
	// PageSize is the :limit of each page.
	PageSize int `yaml:"page_size"`
	// QueryTimeout bounds one query.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxOpenConns bounds the connections to the database.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// CursorConfig is the watermark of cursor mode.
type CursorConfig struct {
	// Column holds the cursor value.
	Column string `yaml:"column"`
	// Type is timestamp, integer or string.
	Type string `yaml:"type"`
	// LookBack is read again below the watermark each run: a duration for
	// timestamp cursors, a count for integer cursors.
	LookBack string `yaml:"look_back"`
}

// Fields declares the configuration for the registry.
func Fields() []core.Field {
	f := []core.Field{
		{Name: "driver", Type: core.TypeString, Required: true, Enum: Drivers(),
			Doc: "Database driver, compiled in: postgres (pgx), mysql (MySQL and MariaDB), sqlite (modernc), sqlserver (go-mssqldb), oracle (go-ora)."},
		{Name: "dsn", Type: core.TypeString, Required: true, Secret: true, Example: "${file:/run/secrets/orders_dsn}",
			Doc: "Connection string in the driver's own syntax, such as postgres://user:pass@host:5432/db or user:pass@tcp(host:3306)/db."},
		{Name: "mode", Type: core.TypeString, Default: ModeCursor, Enum: []string{ModeCursor, ModeSnapshot},
			Doc: "cursor reads rows changed at or after a watermark column; snapshot reads the whole result each run and emits creates, updates and deletes against a local index."},
		{Name: "table", Type: core.TypeString, Example: "public.orders",
			Doc: "Table or view read by the generated query; set table or query."},
		{Name: "columns", Type: core.TypeString, Default: "*", Example: "id, status, total, updated_at",
			Doc: "Select list of the generated query."},
		{Name: "where", Type: core.TypeString, Example: "status <> 'draft'",
			Doc: "Extra SQL condition of the generated query."},
		{Name: "query", Type: core.TypeString,
			Doc: "Query replacing the generated one: a Go text/template whose {{if .Cursor}} and {{if .After}} choose the shape, with the bind parameters :cursor, :key and :limit (never spliced into the text)."},
		{Name: "key", Type: core.TypeStrings, Required: true, Example: "[id]",
			Doc: "Key columns identifying a row; in cursor mode exactly one, which also breaks ties between rows sharing a cursor value."},
		{Name: "cursor", Type: core.TypeObject, Doc: "The watermark of cursor mode.", Fields: []core.Field{
			{Name: "column", Type: core.TypeString, Example: "updated_at", Doc: "Column holding the cursor: a last-modified timestamp or an increasing id."},
			{Name: "type", Type: core.TypeString, Default: string(poll.CursorTime), Enum: []string{string(poll.CursorTime), string(poll.CursorInt), string(poll.CursorString)},
				Doc: "Type of the cursor column."},
			{Name: "look_back", Type: core.TypeString, Default: "0", Example: "5m",
				Doc: "How far below the watermark each run reads again, for rows committed late: a duration for timestamps (5m), a count for integers (1000). Rows read twice are emitted once."},
		}},
		{Name: "page_size", Type: core.TypeInt, Default: DefaultPageSize, Doc: "Rows per page (:limit)."},
		{Name: "query_timeout", Type: core.TypeDuration, Default: DefaultQueryTimeout.String(), Doc: "Longest one query may take."},
		{Name: "max_open_conns", Type: core.TypeInt, Default: DefaultMaxOpenConns, Doc: "Most connections to the database."},
	}
	return append(poll.ScheduleFields(), f...)
}

func (c *Config) applyDefaults() {
	c.ScheduleConfig.ApplyDefaults()
	if c.Mode == "" {
		c.Mode = ModeCursor
	}
	if c.Columns == "" {
		c.Columns = "*"
	}
	if c.Cursor.Type == "" {
		c.Cursor.Type = string(poll.CursorTime)
	}
	if c.Cursor.LookBack == "" {
		c.Cursor.LookBack = "0"
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
}

var identRe = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|` + "`[^`]+`" + `|\[[^\]]+\])(\.([A-Za-z_][A-Za-z0-9_$]*|"[^"]+"|` + "`[^`]+`" + `|\[[^\]]+\]))*$`)

// lookBack parses cursor.look_back for the cursor type.
func (c *Config) lookBack() (time.Duration, int64, error) {
	s := strings.TrimSpace(c.Cursor.LookBack)
	switch poll.CursorKind(c.Cursor.Type) {
	case poll.CursorTime:
		if s == "0" {
			return 0, 0, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, 0, fmt.Errorf("%q is not a duration such as 5m, as a timestamp cursor needs", s)
		}
		return d, 0, nil
	case poll.CursorInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("%q is not a count such as 1000, as an integer cursor needs", s)
		}
		return 0, n, nil
	default:
		if s != "0" {
			return 0, 0, fmt.Errorf("a string cursor has no look-back: remove it")
		}
	}
	return 0, 0, nil
}

// Validate reports every problem at once. It never quotes the DSN.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	pc := poll.Config{Mode: poll.ModeSnapshot, Fetcher: noFetch}
	c.ScheduleConfig.Apply(&pc)
	if err := pc.Validate(); err != nil {
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

var noFetch = poll.FetcherFunc(func(ctx context.Context, _ poll.Request, _ func([]poll.Record) error) error { return nil })
