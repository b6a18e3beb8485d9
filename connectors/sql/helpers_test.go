package sql_test

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/core/conformance"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	connector "github.com/tributary/tributary/connectors/sql"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// testDB is a database a test creates its own tables in.
type testDB struct {
	driver string
	dsn    string
	db     *dbsql.DB
}

var tableSeq atomic.Int64

// table returns a table name no other test uses.
func table(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, time.Now().UnixNano()%1_000_000_000, tableSeq.Add(1))
}

func postgresDB(t testing.TB) *testDB {
	dsn := servicetest.Postgres(t)
	return openDB(t, connector.DriverPostgres, "pgx", dsn)
}

func mysqlDB(t testing.TB) *testDB {
	dsn := servicetest.MySQL(t)
	if !strings.Contains(dsn, "parseTime") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "parseTime=true"
	}
	return openDB(t, connector.DriverMySQL, "mysql", dsn)
}

func sqliteDB(t testing.TB, path string) *testDB {
	return openDB(t, connector.DriverSQLite, "sqlite", sqliteDSN(path))
}

func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
}

func openDB(t testing.TB, driver, name, dsn string) *testDB {
	t.Helper()
	db, err := dbsql.Open(name, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("connect to %s: %v", driver, err)
	}
	return &testDB{driver: driver, dsn: dsn, db: db}
}

func (d *testDB) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := d.db.Exec(d.rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (d *testDB) rebind(q string) string {
	if d.driver != connector.DriverPostgres {
		return q
	}
	n := 0
	var b strings.Builder
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// dropLater drops the table when the test ends.
func (d *testDB) dropLater(t testing.TB, name string) {
	t.Cleanup(func() { d.db.Exec("DROP TABLE IF EXISTS " + name) })
}

// timestampType is the column type of a microsecond timestamp.
func (d *testDB) timestampType() string {
	switch d.driver {
	case connector.DriverMySQL:
		return "DATETIME(6)"
	case connector.DriverPostgres:
		return "TIMESTAMP(6)"
	}
	return "TIMESTAMP"
}

func newSource(t conformance.TB, values map[string]any) *connector.Source {
	t.Helper()
	s := connector.New()
	if err := s.Configure(core.NewConfig("test", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return s
}

func ackAll(t testing.TB, s core.Source, chs []core.Change) {
	t.Helper()
	if len(chs) == 0 {
		return
	}
	if err := s.Ack(context.Background(), chs[len(chs)-1].Position); err != nil {
		t.Fatal(err)
	}
}

// summary renders changes as op:id:val for comparison.
func summary(chs []core.Change) []string {
	var out []string
	for _, ch := range chs {
		id := ch.Key["id"]
		if id == nil {
			id = ch.Key["ID"]
		}
		val := ""
		if ch.After != nil {
			val = fmt.Sprint(ch.After["val"])
		}
		out = append(out, fmt.Sprintf("%s:%v:%s", ch.Op, id, val))
	}
	return out
}

func testEnv(t testing.TB) core.Env { return conformance.TestEnv(t, "test") }

var (
	open   = conformance.Open
	readN  = conformance.ReadN
	settle = conformance.Settle
)
