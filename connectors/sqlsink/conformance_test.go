package sqlsink_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// kitTable is the table the sink kit writes to: rows numbered in the order
// they were inserted, the event id as unique key, and two mapped columns.
type kitTable struct {
	d     *database
	table string

	mu    sync.Mutex
	stall *sql.Tx
	lock  *sql.Conn
}

func newKitTable(t *testing.T, d *database) *kitTable {
	k := &kitTable{d: d, table: d.tableName(t)}
	d.exec(t, "CREATE TABLE "+k.table+" ("+d.autoPos()+", event_id "+d.idType()+" NOT NULL, k TEXT, n BIGINT, "+primaryOrUnique(d)+")")
	switch d.driver {
	case sqlsink.DriverPostgres:
		// Fail and Refuse single events out: ids in these tables are
		// failed with a serialization failure (retried) or a check
		// violation (refused) by a trigger.
		d.exec(t, "CREATE TABLE IF NOT EXISTS sink_failing (tbl TEXT, id TEXT, code TEXT)")
		d.exec(t, `CREATE OR REPLACE FUNCTION sink_fail() RETURNS trigger AS $$
DECLARE c TEXT;
BEGIN
  SELECT code INTO c FROM sink_failing WHERE tbl = TG_TABLE_NAME AND id = NEW.event_id LIMIT 1;
  IF c IS NOT NULL THEN RAISE EXCEPTION 'staged by the test' USING ERRCODE = c; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql`)
		d.exec(t, "CREATE TRIGGER fail BEFORE INSERT ON "+k.table+" FOR EACH ROW EXECUTE FUNCTION sink_fail()")
	case sqlsink.DriverMySQL:
		d.exec(t, "CREATE TABLE IF NOT EXISTS sink_failing (tbl VARCHAR(64) PRIMARY KEY, mode VARCHAR(16))")
		d.exec(t, `CREATE TRIGGER `+k.table+`_fail BEFORE INSERT ON `+k.table+` FOR EACH ROW BEGIN
  DECLARE m VARCHAR(16);
  SELECT mode INTO m FROM sink_failing WHERE tbl = '`+k.table+`';
  IF m = 'fail' THEN SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'staged deadlock';
  ELSEIF m = 'refuse' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test';
  END IF;
END`)
	case sqlsink.DriverSQLite:
		d.exec(t, "CREATE TABLE sink_failing (mode TEXT)")
		d.exec(t, "CREATE TRIGGER refuse BEFORE INSERT ON "+k.table+" WHEN (SELECT mode FROM sink_failing) = 'refuse' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
		// json('x') fails with a plain error, not a constraint: the
		// sink retries it.
		d.exec(t, "CREATE TRIGGER fail BEFORE INSERT ON "+k.table+" WHEN (SELECT mode FROM sink_failing) = 'fail' BEGIN SELECT json('not json'); END")
	}
	return k
}

// primaryOrUnique is the key clause of the event id, beside the row
// number (SQLite's is the primary key).
func primaryOrUnique(d *database) string {
	if d.driver == sqlsink.DriverSQLite {
		return "UNIQUE (event_id)"
	}
	return "PRIMARY KEY (event_id)"
}

func (k *kitTable) received() []conformance.Delivered {
	rows, err := k.d.db.Query("SELECT event_id FROM " + k.table + " ORDER BY pos")
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []conformance.Delivered
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			out = append(out, conformance.Delivered{ID: id})
		}
	}
	return out
}

// stage makes the target fail (mode fail) or refuse the given ids (on
// PostgreSQL), or every insert (elsewhere).
func (k *kitTable) stage(t conformance.TB, mode string, ids []string) {
	var err error
	switch k.d.driver {
	case sqlsink.DriverPostgres:
		code := map[string]string{"fail": "40001", "refuse": "23514"}[mode]
		for _, id := range ids {
			if _, err = k.d.db.Exec("INSERT INTO sink_failing VALUES ($1, $2, $3)", k.table, id, code); err != nil {
				break
			}
		}
	case sqlsink.DriverMySQL:
		_, err = k.d.db.Exec("REPLACE INTO sink_failing VALUES (?, ?)", k.table, mode)
	case sqlsink.DriverSQLite:
		if _, err = k.d.db.Exec("DELETE FROM sink_failing"); err == nil {
			_, err = k.d.db.Exec("INSERT INTO sink_failing VALUES (?)", mode)
		}
	}
	if err != nil {
		t.Fatalf("stage %s: %v", mode, err)
	}
}

// hold locks the table from a transaction of the test's own until
// recover, so that a Write waits.
func (k *kitTable) hold(t conformance.TB) {
	ctx := context.Background()
	var err error
	switch k.d.driver {
	case sqlsink.DriverMySQL:
		var c *sql.Conn
		if c, err = k.d.db.Conn(ctx); err == nil {
			if _, err = c.ExecContext(ctx, "LOCK TABLES "+k.table+" WRITE"); err == nil {
				k.mu.Lock()
				k.lock = c
				k.mu.Unlock()
			}
		}
	default:
		var tx *sql.Tx
		if tx, err = k.d.db.BeginTx(ctx, nil); err == nil {
			lock := "LOCK TABLE " + k.table + " IN ACCESS EXCLUSIVE MODE"
			if k.d.driver == sqlsink.DriverSQLite {
				lock = "INSERT INTO sink_failing VALUES ('stall')"
			}
			if _, err = tx.Exec(lock); err == nil {
				k.mu.Lock()
				k.stall = tx
				k.mu.Unlock()
			}
		}
	}
	if err != nil {
		t.Fatalf("stall the table: %v", err)
	}
}

func (k *kitTable) recover(t conformance.TB) {
	k.mu.Lock()
	tx, c := k.stall, k.lock
	k.stall, k.lock = nil, nil
	k.mu.Unlock()
	if tx != nil {
		_ = tx.Rollback()
	}
	if c != nil {
		_, _ = c.ExecContext(context.Background(), "UNLOCK TABLES")
		c.Close()
	}
	var err error
	switch k.d.driver {
	case sqlsink.DriverPostgres:
		_, err = k.d.db.Exec("DELETE FROM sink_failing WHERE tbl = $1", k.table)
	case sqlsink.DriverMySQL:
		_, err = k.d.db.Exec("DELETE FROM sink_failing WHERE tbl = ?", k.table)
	case sqlsink.DriverSQLite:
		_, err = k.d.db.Exec("DELETE FROM sink_failing")
	}
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
}

// TestSinkConformance runs the sink kit against the sql sink writing to
// SQLite, PostgreSQL and MariaDB, in insert mode. On PostgreSQL a trigger
// fails or refuses single rows, so the kit checks that one bad row of a
// batch is refused alone while the rest commits.
func TestSinkConformance(t *testing.T) {
	for _, driver := range databases() {
		t.Run(driver, func(t *testing.T) {
			d := openDatabase(t, driver)
			k := newKitTable(t, d)
			caps := conformance.SinkCapabilities{Targeted: true}
			if driver != sqlsink.DriverPostgres {
				caps = conformance.SinkCapabilities{TargetedReason: "the test's trigger fails every insert of the table; single bad rows among good ones are checked by TestBadRowRefusedAlone"}
			}
			conformance.RunSink(t, conformance.SinkHarness{
				New: func(t conformance.TB) core.Sink {
					s := sqlsink.New()
					err := s.Configure(core.NewConfig("conformance", map[string]any{
						"driver": d.driver, "dsn": d.dsn, "table": k.table,
						"columns": []any{
							map[string]any{"name": "k", "value": "event.partitionkey"},
							map[string]any{"name": "n", "value": "event.data.seq", "type": "integer"},
						},
					}))
					if err != nil {
						t.Fatalf("Configure: %v", err)
					}
					return s
				},
				Received:     k.received,
				Fail:         func(t conformance.TB, ids []string) { k.stage(t, "fail", ids) },
				Refuse:       func(t conformance.TB, ids []string) { k.stage(t, "refuse", ids) },
				Stall:        k.hold,
				Recover:      k.recover,
				Capabilities: caps,
			})
		})
	}
}
