package mysql

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// Config is the mysql_cdc configuration.
type Config struct {
	DSN       string          `yaml:"dsn" required:"true" secret:"true" example:"tributary:secret@tcp(127.0.0.1:3306)/shop" doc:"Go MySQL DSN (user:password@tcp(host:port)/database) of a user with REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the tables."`
	Tables    []string        `yaml:"tables" example:"[shop.orders, shop.order_lines]" doc:"Captured tables as database.table (or table, in the DSN's database); empty captures every table of the DSN's database."`
	ServerID  uint32          `yaml:"server_id" default:"0" doc:"Replica server id the connector registers with; 0 derives one from the connector name. It must differ from the server's and every other replica's."`
	Snapshot  SnapshotConfig  `yaml:"snapshot" doc:"Initial snapshot of the tables' existing rows."`
	Heartbeat HeartbeatConfig `yaml:"heartbeat" doc:"Heartbeats that let an idle connector advance its checkpoint."`
	MaxBatch  int             `yaml:"max_batch" default:"1000" doc:"Most changes handed to the runtime at once; also bounds the changes decoded ahead of it."`
}

// SnapshotConfig configures snapshots.
type SnapshotConfig struct {
	Mode      string `yaml:"mode" default:"initial" enum:"initial,never,when_needed" doc:"initial snapshots when there is no checkpoint; never only streams; when_needed also snapshots when the binlog behind a checkpoint was purged."`
	ChunkSize int    `yaml:"chunk_size" default:"10000" doc:"Rows per primary-key-paginated snapshot query."`
}

// HeartbeatConfig configures heartbeats.
type HeartbeatConfig struct {
	Interval time.Duration `yaml:"interval" default:"10s" doc:"How often the server sends a heartbeat on an idle binlog and, when transactions of other tables moved the binlog on, the connector emits a heartbeat change that advances its checkpoint."`
}

// dsn is the parsed connection string.
type dsn struct {
	user, password, host string
	port                 uint16
	db                   string
	cfg                  *driver.Config
}

func parseDSN(s string) (dsn, error) {
	c, err := driver.ParseDSN(s)
	if err != nil {
		return dsn{}, errors.New("check its syntax: user:password@tcp(host:port)/database")
	}
	if c.Net != "tcp" {
		return dsn{}, fmt.Errorf("network %q: the binlog is read over tcp(host:port)", c.Net)
	}
	host, port := c.Addr, "3306"
	if i := strings.LastIndexByte(c.Addr, ':'); i >= 0 {
		host, port = c.Addr[:i], c.Addr[i+1:]
	}
	var p uint16
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p == 0 {
		return dsn{}, fmt.Errorf("port %q is not a number", port)
	}
	return dsn{user: c.User, password: c.Passwd, host: host, port: p, db: c.DBName, cfg: c}, nil
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	d, err := parseDSN(c.DSN)
	switch {
	case c.DSN == "":
		errs = append(errs, core.FieldErrorf("dsn", "is required: a MySQL DSN such as user:password@tcp(host:3306)/shop"))
	case err != nil:
		errs = append(errs, core.FieldErrorf("dsn", "is not a valid MySQL DSN: %v", err))
	}
	defaultDB := d.db
	if err != nil || c.DSN == "" {
		defaultDB = "?" // the DSN's problem is reported; don't report its tables too
	}
	for i, t := range c.Tables {
		if _, _, err := splitTable(t, defaultDB); err != nil {
			errs = append(errs, core.FieldErrorf(fmt.Sprintf("tables[%d]", i), "%v", err))
		}
	}
	if len(c.Tables) == 0 && err == nil && d.db == "" {
		errs = append(errs, core.FieldErrorf("tables", "is empty and the DSN names no database: list the tables as database.table or name a database in the DSN"))
	}
	switch cdc.SnapshotMode(c.Snapshot.Mode) {
	case cdc.SnapshotInitial, cdc.SnapshotNever, cdc.SnapshotWhenNeeded:
	default:
		errs = append(errs, core.FieldErrorf("snapshot.mode", "%q is not one of %s", c.Snapshot.Mode, strings.Join(cdc.SnapshotModes(), ", ")))
	}
	if c.Snapshot.ChunkSize < 1 {
		errs = append(errs, core.FieldErrorf("snapshot.chunk_size", "must be at least 1, got %d", c.Snapshot.ChunkSize))
	}
	if c.Heartbeat.Interval < 100*time.Millisecond {
		errs = append(errs, core.FieldErrorf("heartbeat.interval", "must be at least 100ms, got %s", c.Heartbeat.Interval))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, core.FieldErrorf("max_batch", "must be at least 1, got %d", c.MaxBatch))
	}
	return errors.Join(errs...)
}

// splitTable splits "database.table", or "table" in the DSN's database.
func splitTable(s, defaultDB string) (db, table string, err error) {
	parts := strings.Split(s, ".")
	switch {
	case len(parts) == 1 && parts[0] != "" && defaultDB != "":
		return defaultDB, parts[0], nil
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return parts[0], parts[1], nil
	}
	return "", "", fmt.Errorf("%q is not a table name: write database.table, such as shop.orders", s)
}

// serverID returns the configured replica server id, or one derived from
// the connector name, in [1<<24, 1<<31) so that it rarely meets the small
// ids servers are usually given.
func (c *Config) serverID(name string) uint32 {
	if c.ServerID != 0 {
		return c.ServerID
	}
	h := fnv.New32a()
	h.Write([]byte("tributary/" + name))
	return 1<<24 + h.Sum32()%(1<<31-1<<24)
}

// MaxInFlight is the max_in_flight of a mysql_cdc connector whose entry
// sets none, in place of the runtime's 10,000. Every change in flight
// holds its decoded row, its key and, until it is durable, its event, and
// the sidecar's GC target lets the heap grow to three times what is live.
// Twice max_batch lets the runtime read and map a batch while the stream
// writes the one before: with 1,000 (one batch) reading waited for every
// write. A 1M-row catch-up into the embedded stream (shared machine, load
// 3-4) ran at 352k-377k changes/s peaking at 74-75 MB RSS with 2,000,
// at 149k-159k/s and 61-63 MB with 1,000, and no faster with 3,000 or
// 4,000 (85 and 97 MB); into Kafka 186k/s at 79 MB against 115k/s at
// 57 MB (README, Performance).
const MaxInFlight = 2000

// DefaultMaxInFlight returns MaxInFlight: the sidecar's configuration
// gives it to a connector entry without max_in_flight
// (config.InFlightDefaulter).
func (*Source) DefaultMaxInFlight() int { return MaxInFlight }
