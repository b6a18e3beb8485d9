package sqlsink_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
	"github.com/tributary/tributary/core/statedb"
)

// database is one of the databases the tests write to, seen from a
// connection of the test's own.
type database struct {
	driver string
	// dsn is what the sink's configuration gets.
	dsn string
	db  *sql.DB
}

// databases returns the databases to run a test against: SQLite always,
// PostgreSQL and MariaDB from scripts/services (skipped, or failed when
// services are required, when absent).
func databases() []string {
	return []string{sqlsink.DriverSQLite, sqlsink.DriverPostgres, sqlsink.DriverMySQL}
}

// openDatabase connects to the database of driver.
func openDatabase(t testing.TB, driver string) *database {
	t.Helper()
	d := &database{driver: driver}
	var err error
	switch driver {
	case sqlsink.DriverSQLite:
		d.dsn = filepath.Join(t.TempDir(), "target.db")
		d.db, err = statedb.Open(d.dsn, statedb.Options{})
	case sqlsink.DriverPostgres:
		d.dsn = servicetest.Postgres(t)
		d.db, err = sql.Open("pgx", d.dsn)
	case sqlsink.DriverMySQL:
		d.dsn = servicetest.MySQL(t)
		var mc *mysql.Config
		if mc, err = mysql.ParseDSN(d.dsn); err == nil {
			mc.ParseTime = true
			d.db, err = sql.Open("mysql", mc.FormatDSN())
		}
	}
	if err != nil {
		t.Fatalf("open %s: %v", driver, err)
	}
	t.Cleanup(func() { d.db.Close() })
	if err := d.db.Ping(); err != nil {
		t.Fatalf("connect to %s: %v", driver, err)
	}
	return d
}

var tableSeq atomic.Int64

// tableName returns a table name of the test's own, dropped at the end.
func (d *database) tableName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("sink_%d_%d", time.Now().UnixNano()%1e9, tableSeq.Add(1))
	t.Cleanup(func() { _, _ = d.db.Exec("DROP TABLE IF EXISTS " + name) })
	return name
}

func (d *database) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := d.db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %s: %v", d.driver, query, err)
	}
}

// autoPos is the column type of an increasing row number, in the order
// rows are inserted.
func (d *database) autoPos() string {
	switch d.driver {
	case sqlsink.DriverPostgres:
		return "pos BIGSERIAL"
	case sqlsink.DriverMySQL:
		return "pos BIGINT AUTO_INCREMENT UNIQUE"
	}
	return "pos INTEGER PRIMARY KEY AUTOINCREMENT"
}

// idType is the type of an event id key column.
func (d *database) idType() string {
	if d.driver == sqlsink.DriverMySQL {
		return "VARCHAR(255)"
	}
	return "TEXT"
}

// newSink configures a sql sink writing to d with the configuration
// values (driver and dsn added).
func (d *database) newSink(t testing.TB, values map[string]any) *sqlsink.Sink {
	t.Helper()
	values["driver"], values["dsn"] = d.driver, d.dsn
	s := sqlsink.New()
	if err := s.Configure(core.NewConfig("orders_table", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

// open opens s, closing it at the end of the test.
func open(t testing.TB, s *sqlsink.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "orders_table", StateDir: t.TempDir()}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

// write writes ds and returns the results.
func write(t testing.TB, s core.Sink, ds ...core.Delivery) []core.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rs := s.Write(ctx, ds)
	if len(rs) != len(ds) {
		t.Fatalf("Write of %d deliveries returned %d results", len(ds), len(rs))
	}
	return rs
}

var eventSeq atomic.Int64

// event makes a delivery of an event of type typ, key key and data.
func event(typ, key string, data map[string]any) core.Delivery {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	n := eventSeq.Add(1)
	return core.Delivery{Event: &core.Event{
		ID:              fmt.Sprintf("ev-%d-%d", time.Now().UnixNano(), n),
		Source:          "/test",
		SpecVersion:     core.SpecVersion,
		Type:            typ,
		Subject:         key,
		Time:            time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC).Add(time.Duration(n) * time.Second),
		DataContentType: "application/json",
		Data:            b,
		PartitionKey:    key,
	}}
}

// rawEvent is event with data given as JSON text, to keep its numbers'
// digits.
func rawEvent(typ, key, data string) core.Delivery {
	d := event(typ, key, nil)
	d.Event.Data = []byte(data)
	return d
}

// statuses lists the results' statuses, for messages and comparisons.
func statuses(rs []core.Result) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Status.String())
	}
	return strings.Join(out, " ")
}

// count returns the rows of table.
func (d *database) count(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := d.db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}
