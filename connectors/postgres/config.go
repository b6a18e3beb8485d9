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

// Config is the postgres_cdc connector's configuration.
type Config struct {
	// URL is the PostgreSQL connection URL (or key=value DSN).
	URL string `yaml:"url"`
	// Tables lists the captured tables as schema.table; empty means every
	// table of the publication (which is then FOR ALL TABLES when created).
	Tables []string `yaml:"tables"`
	// Publication is the publication's name.
	Publication string `yaml:"publication"`
	// Slot is the logical replication slot's name.
	Slot string `yaml:"slot"`
	// Setup says whether the publication and slot are created or verified.
	Setup string `yaml:"setup"`
	// Snapshot configures the initial snapshot.
	Snapshot SnapshotConfig `yaml:"snapshot"`
	// Heartbeat configures status updates and idle-slot heartbeats.
	Heartbeat HeartbeatConfig `yaml:"heartbeat"`
	// Outbox, when Table is set, turns the rows inserted into an outbox
	// table into message changes.
	Outbox OutboxConfig `yaml:"outbox"`
	// MaxBatch bounds the changes one Read returns.
	MaxBatch int `yaml:"max_batch"`
}

// SnapshotConfig configures snapshots.
type SnapshotConfig struct {
	Mode      string `yaml:"mode"`
	ChunkSize int    `yaml:"chunk_size"`
	// Parallel is how many tables are read at once, each on its own
	// connection.
	Parallel int `yaml:"parallel"`
}

// HeartbeatConfig configures heartbeats.
type HeartbeatConfig struct {
	Interval time.Duration `yaml:"interval"`
	Action   string        `yaml:"action"`
}

// OutboxConfig configures the transactional outbox mode.
type OutboxConfig struct {
	// Table is the outbox table as schema.table.
	Table string `yaml:"table"`
	// DeleteCaptured deletes outbox rows once their events are durable.
	DeleteCaptured bool `yaml:"delete_captured"`
}

// Defaults.
const (
	DefaultChunkSize         = 10000
	DefaultSnapshotParallel  = 4
	DefaultMaxBatch          = 2048
	DefaultHeartbeatInterval = 10 * time.Second
)

// Fields declares the connector's configuration for the registry.
func Fields() []core.Field {
	return []core.Field{
		{Name: "url", Type: core.TypeString, Required: true, Secret: true, Example: "postgres://tributary:${file:/run/secrets/pg}@db:5432/erp",
			Doc: "PostgreSQL connection URL; the role needs the REPLICATION attribute (or superuser) and SELECT on the captured tables."},
		{Name: "tables", Type: core.TypeStrings, Example: "[public.orders, public.order_lines]",
			Doc: "Captured tables as schema.table; empty captures every table of the publication."},
		{Name: "publication", Type: core.TypeString, Example: "tributary_legacy_orders",
			Doc: "Publication name; defaults to tributary_<connector name>."},
		{Name: "slot", Type: core.TypeString, Example: "tributary_legacy_orders",
			Doc: "Logical replication slot name; defaults to tributary_<connector name>."},
		{Name: "setup", Type: core.TypeString, Default: SetupAuto, Enum: []string{SetupAuto, SetupVerify},
			Doc: "auto creates a missing publication and slot; verify requires an operator to have created them."},
		{Name: "snapshot", Type: core.TypeObject, Doc: "Reading the existing rows before streaming.", Fields: []core.Field{
			{Name: "mode", Type: core.TypeString, Default: string(cdc.SnapshotInitial), Enum: cdc.SnapshotModes(),
				Doc: "initial snapshots when there is no checkpoint; never only streams; when_needed also snapshots when the slot behind a checkpoint is gone."},
			{Name: "chunk_size", Type: core.TypeInt, Default: DefaultChunkSize,
				Doc: "Rows per keyset-paginated snapshot query."},
			{Name: "parallel", Type: core.TypeInt, Default: DefaultSnapshotParallel,
				Doc: "Tables read at once, each on its own connection inside the same consistent snapshot; 1 reads them one after the other."},
		}},
		{Name: "heartbeat", Type: core.TypeObject, Doc: "Status updates that keep an idle slot from pinning WAL.", Fields: []core.Field{
			{Name: "interval", Type: core.TypeDuration, Default: DefaultHeartbeatInterval.String(),
				Doc: "How often the connector reports its confirmed position and measures the slot lag."},
			{Name: "action", Type: core.TypeString, Default: HeartbeatStatus, Enum: []string{HeartbeatStatus, HeartbeatMessage},
				Doc: "status only reports positions; message also writes a logical decoding message when the slot is idle."},
		}},
		{Name: "outbox", Type: core.TypeObject, Doc: "Transactional outbox mode: rows inserted into this table become message changes.", Fields: []core.Field{
			{Name: "table", Type: core.TypeString, Example: "public.outbox",
				Doc: "Outbox table (columns id, aggregatetype, aggregateid, type, payload jsonb, headers jsonb) as schema.table."},
			{Name: "delete_captured", Type: core.TypeBool, Default: false,
				Doc: "Delete outbox rows once their events are durable on the stream."},
		}},
		{Name: "max_batch", Type: core.TypeInt, Default: DefaultMaxBatch,
			Doc: "Most changes handed to the runtime in one read."},
	}
}

func (c *Config) applyDefaults(name string) {
	base := "tributary_" + sanitizeName(name)
	if c.Publication == "" {
		c.Publication = base
	}
	if c.Slot == "" {
		c.Slot = base
	}
	if c.Setup == "" {
		c.Setup = SetupAuto
	}
	if c.Snapshot.Mode == "" {
		c.Snapshot.Mode = string(cdc.SnapshotInitial)
	}
	if c.Snapshot.ChunkSize == 0 {
		c.Snapshot.ChunkSize = DefaultChunkSize
	}
	if c.Snapshot.Parallel == 0 {
		c.Snapshot.Parallel = DefaultSnapshotParallel
	}
	if c.Heartbeat.Interval == 0 {
		c.Heartbeat.Interval = DefaultHeartbeatInterval
	}
	if c.Heartbeat.Action == "" {
		c.Heartbeat.Action = HeartbeatStatus
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
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
