package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// The set-up modes of setup.
const (
	// SetupAuto creates the publication and the replication slot when they
	// are missing, and adds listed tables missing from the publication.
	SetupAuto = "auto"
	// SetupVerify only checks that an operator created them.
	SetupVerify = "verify"
)

// The heartbeat actions of heartbeat.action.
const (
	// HeartbeatStatus only sends status updates, asking the server for its
	// position, and confirms it when every change read is acknowledged.
	HeartbeatStatus = "status"
	// HeartbeatMessage also writes a tiny logical decoding message
	// (pg_logical_emit_message, not transactional, no table) when the slot
	// has been idle for an interval, so that the slot moves on even when
	// the server sends no keepalive carrying a newer position.
	HeartbeatMessage = "message"
)

// Config is the postgres_cdc connector's configuration. Each key is
// declared once, by the tags of its field: the registry derives the field
// list (validation, `tributary connectors`, the config schema) from them,
// and Configure decodes into this struct with the same defaults.
type Config struct {
	URL         string          `yaml:"url" required:"true" secret:"true" example:"postgres://tributary:${file:/run/secrets/pg}@db:5432/erp" doc:"PostgreSQL connection URL; the role needs the REPLICATION attribute (or superuser) and SELECT on the captured tables."`
	Tables      []string        `yaml:"tables" example:"[public.orders, public.order_lines]" doc:"Captured tables as schema.table; empty captures every table of the publication."`
	Publication string          `yaml:"publication" example:"tributary_legacy_orders" doc:"Publication name; defaults to tributary_<connector name>."`
	Slot        string          `yaml:"slot" example:"tributary_legacy_orders" doc:"Logical replication slot name; defaults to tributary_<connector name>."`
	Setup       string          `yaml:"setup" default:"auto" enum:"auto,verify" doc:"auto creates a missing publication and slot; verify requires an operator to have created them."`
	Snapshot    SnapshotConfig  `yaml:"snapshot" doc:"Reading the existing rows before streaming."`
	Heartbeat   HeartbeatConfig `yaml:"heartbeat" doc:"Status updates that keep an idle slot from pinning WAL."`
	Outbox      OutboxConfig    `yaml:"outbox" doc:"Transactional outbox mode: rows inserted into this table become message changes."`
	MaxBatch    int             `yaml:"max_batch" default:"512" doc:"Most changes handed to the runtime in one read; about two reads more wait decoded ahead of the runtime."`
}

// SnapshotConfig configures snapshots.
type SnapshotConfig struct {
	Mode      string `yaml:"mode" default:"initial" enum:"initial,never,when_needed" doc:"initial snapshots when there is no checkpoint; never only streams; when_needed also snapshots when the slot behind a checkpoint is gone."`
	ChunkSize int    `yaml:"chunk_size" default:"10000" doc:"Rows per keyset-paginated snapshot query."`
	Parallel  int    `yaml:"parallel" default:"4" doc:"Tables read at once, each on its own connection inside the same consistent snapshot; 1 reads them one after the other."`
}

// HeartbeatConfig configures heartbeats.
type HeartbeatConfig struct {
	Interval time.Duration `yaml:"interval" default:"10s" doc:"How often the connector reports its confirmed position and measures the slot lag."`
	Action   string        `yaml:"action" default:"status" enum:"status,message" doc:"status only reports positions; message also writes a logical decoding message when the slot is idle."`
}

// OutboxConfig configures the transactional outbox mode, which is on when
// Table is set.
type OutboxConfig struct {
	Table          string `yaml:"table" example:"public.outbox" doc:"Outbox table (columns id, aggregatetype, aggregateid, type, payload jsonb, headers jsonb) as schema.table."`
	DeleteCaptured bool   `yaml:"delete_captured" default:"false" doc:"Delete outbox rows once their events are durable on the stream."`
}

// decodeConfig decodes c into a Config: declared defaults for the keys it
// leaves out, and the publication and the slot named after the connector
// when it names neither.
func decodeConfig(c core.Config) (Config, error) {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return cfg, err
	}
	// A default no tag can state: it depends on the connector's name.
	base := "tributary_" + sanitizeName(c.Name)
	if cfg.Publication == "" {
		cfg.Publication = base
	}
	if cfg.Slot == "" {
		cfg.Slot = base
	}
	return cfg, nil
}

// maxSnapshotParallel bounds snapshot.parallel: each table read at once
// holds a connection and a transaction open for the whole snapshot.
const maxSnapshotParallel = 64

var nameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// sanitizeName turns a connector name into a valid slot name part.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, core.FieldErrorf("url", "is required: a PostgreSQL URL such as postgres://user:pass@host:5432/db"))
	} else if _, err := pgconn.ParseConfig(c.URL); err != nil {
		// The parse error may echo the URL; keep the password out of it.
		errs = append(errs, core.FieldErrorf("url", "is not a valid PostgreSQL connection string: %s", redactParseError(err)))
	}
	for i, t := range c.Tables {
		if _, _, err := splitTable(t); err != nil {
			errs = append(errs, core.FieldErrorf(fmt.Sprintf("tables[%d]", i), "%v", err))
		}
	}
	if !nameRe.MatchString(c.Slot) {
		errs = append(errs, core.FieldErrorf("slot", "%q is not a valid slot name: use lowercase letters, digits and underscores, at most 63", c.Slot))
	}
	if c.Publication == "" || strings.ContainsAny(c.Publication, "\"\x00") {
		errs = append(errs, core.FieldErrorf("publication", "%q is not a valid publication name", c.Publication))
	}
	if c.Setup != SetupAuto && c.Setup != SetupVerify {
		errs = append(errs, core.FieldErrorf("setup", "%q is not one of %s, %s", c.Setup, SetupAuto, SetupVerify))
	}
	switch cdc.SnapshotMode(c.Snapshot.Mode) {
	case cdc.SnapshotInitial, cdc.SnapshotNever, cdc.SnapshotWhenNeeded:
	default:
		errs = append(errs, core.FieldErrorf("snapshot.mode", "%q is not one of %s", c.Snapshot.Mode, strings.Join(cdc.SnapshotModes(), ", ")))
	}
	if c.Snapshot.ChunkSize < 1 {
		errs = append(errs, core.FieldErrorf("snapshot.chunk_size", "must be at least 1, got %d", c.Snapshot.ChunkSize))
	}
	if c.Snapshot.Parallel < 1 || c.Snapshot.Parallel > maxSnapshotParallel {
		errs = append(errs, core.FieldErrorf("snapshot.parallel", "must be between 1 and %d tables read at once, got %d", maxSnapshotParallel, c.Snapshot.Parallel))
	}
	if c.Heartbeat.Interval < 10*time.Millisecond {
		errs = append(errs, core.FieldErrorf("heartbeat.interval", "must be at least 10ms, got %s", c.Heartbeat.Interval))
	}
	if c.Heartbeat.Action != HeartbeatStatus && c.Heartbeat.Action != HeartbeatMessage {
		errs = append(errs, core.FieldErrorf("heartbeat.action", "%q is not one of %s, %s", c.Heartbeat.Action, HeartbeatStatus, HeartbeatMessage))
	}
	if c.Outbox.Table != "" {
		if _, _, err := splitTable(c.Outbox.Table); err != nil {
			errs = append(errs, core.FieldErrorf("outbox.table", "%v", err))
		}
	} else if c.Outbox.DeleteCaptured {
		errs = append(errs, core.FieldErrorf("outbox.delete_captured", "needs outbox.table"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, core.FieldErrorf("max_batch", "must be at least 1, got %d", c.MaxBatch))
	}
	return errors.Join(errs...)
}

// redactParseError returns the reason a connection string does not parse
// without echoing the string, which may hold a password.
func redactParseError(err error) string {
	if inner := errors.Unwrap(err); inner != nil {
		return inner.Error()
	}
	return "check its syntax"
}

// splitTable splits "schema.table" (or "table", meaning public).
func splitTable(s string) (schema, table string, err error) {
	parts := strings.Split(s, ".")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return "public", parts[0], nil
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("%q is not a table name: write schema.table, such as public.orders", s)
}

// qualified returns the canonical schema.table form of s.
func qualified(s string) string {
	schema, table, err := splitTable(s)
	if err != nil {
		return s
	}
	return schema + "." + table
}

// MaxInFlight is the max_in_flight of a postgres_cdc connector whose entry
// sets none, in place of the runtime's 10,000. Every change in flight
// holds its decoded row, its key and, until it is durable, its event, and
// the sidecar's GC target lets the heap grow to three times what is live:
// a 1M-row catch-up into Kafka peaked at 240-245 MB RSS with 10,000 (and
// max_batch 2,048), at 104-122 MB with 1,000 (max_batch 1,024) and at
// 72-78 MB with 1,000 (max_batch 512), at least as fast as with 10,000
// on the shared machine (README, Performance).
const MaxInFlight = 1000

// DefaultMaxInFlight returns MaxInFlight: the sidecar's configuration
// gives it to a connector entry without max_in_flight
// (config.InFlightDefaulter).
func (*Source) DefaultMaxInFlight() int { return MaxInFlight }
