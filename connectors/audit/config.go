package audit

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// The databases of the driver field.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Durability of SQLite commits (the sync field).
const (
	SyncFull   = "full"
	SyncNormal = "normal"
)

// Config is the audit sink's configuration. Each field declares its key
// (see core.FieldsOf); the README's Configuration section says more.
type Config struct {
	Driver      string        `yaml:"driver" default:"sqlite" enum:"sqlite,postgres" doc:"Where the log is kept: sqlite (a file, by default in the sink's state directory) or postgres."`
	Path        string        `yaml:"path" default:"audit.db" example:"/var/lib/tributary/audit.db" doc:"SQLite file (driver: sqlite); a relative path is inside the sink's state directory."`
	DSN         string        `yaml:"dsn" secret:"true" example:"${file:/run/secrets/audit_dsn}" doc:"PostgreSQL connection URL (driver: postgres), such as postgres://user:pass@host:5432/db."`
	TablePrefix string        `yaml:"table_prefix" default:"audit_" doc:"Prefix of the log's two tables, <prefix>events and <prefix>replays: lowercase letters, digits and underscores."`
	Retention   time.Duration `yaml:"retention" default:"0s" example:"720h" doc:"How long an event is kept after it was logged; 0 keeps every event forever."`
	PruneEvery  time.Duration `yaml:"prune_every" default:"1m" doc:"How often events older than retention are deleted, in small batches, in the background."`
	Sync        string        `yaml:"sync" default:"full" enum:"full,normal" doc:"SQLite durability: full (a logged event survives a power loss) or normal (it survives a crash of the process; a power loss may lose the last ones logged)."`
	MaxConns    int           `yaml:"max_open_conns" default:"4" doc:"Most connections to PostgreSQL."`
}

var prefixRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// Validate reports every problem at once. It never quotes the DSN.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, core.FieldErrorf(path, format, args...))
	}
	switch c.Driver {
	case DriverSQLite:
		if strings.TrimSpace(c.Path) == "" {
			add("path", "is empty: leave it out for audit.db in the sink's state directory, or name a file")
		}
		if c.DSN != "" {
			add("dsn", "is for driver: postgres; driver sqlite keeps the log in path")
		}
	case DriverPostgres:
		if strings.TrimSpace(c.DSN) == "" {
			add("dsn", "is required with driver: postgres (is its variable or file set?)")
		}
		if c.MaxConns < 1 {
			add("max_open_conns", "is %d; give at least 1", c.MaxConns)
		}
	default:
		add("driver", "%q is not one of sqlite, postgres", c.Driver)
	}
	if !prefixRe.MatchString(c.TablePrefix) || len(c.TablePrefix) > 40 {
		add("table_prefix", "%q is not a table name prefix such as audit_ (lowercase letters, digits and underscores, at most 40)", c.TablePrefix)
	}
	if c.Retention < 0 {
		add("retention", "is negative; give a duration such as 720h, or 0 to keep every event")
	}
	if c.PruneEvery <= 0 {
		add("prune_every", "must be positive, such as 1m")
	}
	switch c.Sync {
	case SyncFull, SyncNormal:
	default:
		add("sync", "%q is not one of full, normal", c.Sync)
	}
	return errors.Join(errs...)
}

// ParseConfig decodes and validates the configuration of an audit sink,
// as the sink's Configure does; a tool that reads the log (`tributary
// events search`) uses it on the sink's block of the configuration file.
func ParseConfig(c core.Config) (Config, error) {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// SQLitePath returns the SQLite file of the log (driver: sqlite) for a
// sink whose state directory is stateDir.
func (c *Config) SQLitePath(stateDir string) string {
	if filepath.IsAbs(c.Path) || stateDir == "" {
		return c.Path
	}
	return filepath.Join(stateDir, c.Path)
}
