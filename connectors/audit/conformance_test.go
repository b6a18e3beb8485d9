package audit_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/statedb"
)

// logTarget is the SQLite log the sink kit writes to, seen from a
// connection of its own: what it took, in the order it took it (rowid
// order), and the failures it stages.
type logTarget struct {
	t    testing.TB
	path string

	mu    sync.Mutex
	db    *sql.DB
	stall *sql.Tx // holds the write lock while the log is stalled
}

func (lt *logTarget) conn() *sql.DB {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.db == nil {
		db, err := statedb.Open(lt.path, statedb.Options{})
		if err != nil {
			lt.t.Fatalf("open the log: %v", err)
		}
		lt.db = db
	}
	return lt.db
}

func (lt *logTarget) received() []conformance.Delivered {
	rows, err := lt.conn().Query("SELECT id FROM audit_events ORDER BY rowid")
	if err != nil {
		return nil // not created yet
	}
	defer rows.Close()
	var out []conformance.Delivered
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			lt.t.Errorf("read the log: %v", err)
			return out
		}
		out = append(out, conformance.Delivered{ID: id})
	}
	return out
}

// fail makes every insert fail until recover: a Write is one transaction,
// so one failed event fails it whole.
func (lt *logTarget) fail(t conformance.TB, _ []string) {
	if _, err := lt.conn().Exec(`CREATE TRIGGER IF NOT EXISTS failing BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'failing by test'); END`); err != nil {
		t.Fatalf("make the log fail: %v", err)
	}
}

// hold takes the log's write lock on a connection of its own until
// recover, so that a Write waits.
func (lt *logTarget) hold(t conformance.TB) {
	tx, err := lt.conn().BeginTx(context.Background(), nil)
	if err == nil {
		_, err = tx.Exec("INSERT INTO audit_replays (id, at, who, sink, filter, count) VALUES ('stall', '', '', '', '', 0)")
	}
	if err != nil {
		t.Fatalf("stall the log: %v", err)
	}
	lt.mu.Lock()
	lt.stall = tx
	lt.mu.Unlock()
}

func (lt *logTarget) recover(t conformance.TB) {
	lt.mu.Lock()
	tx := lt.stall
	lt.stall = nil
	lt.mu.Unlock()
	if tx != nil {
		_ = tx.Rollback()
	}
	if _, err := lt.conn().Exec(`DROP TRIGGER IF EXISTS failing`); err != nil {
		t.Fatalf("make the log work again: %v", err)
	}
}

// TestSinkConformance runs the sink kit against the audit sink writing to
// one SQLite log.
func TestSinkConformance(t *testing.T) {
	lt := &logTarget{t: t, path: filepath.Join(t.TempDir(), "audit.db")}
	t.Cleanup(func() {
		if lt.db != nil {
			lt.db.Close()
		}
	})
	conformance.RunSink(t, conformance.SinkHarness{
		New: func(t conformance.TB) core.Sink {
			s := audit.New()
			if err := s.Configure(core.NewConfig("conformance", map[string]any{"path": lt.path})); err != nil {
				t.Fatalf("Configure: %v", err)
			}
			return s
		},
		Received: lt.received,
		Fail:     lt.fail,
		Stall:    lt.hold,
		Recover:  lt.recover,
		Capabilities: conformance.SinkCapabilities{
			TargetedReason: "a Write is one transaction: the log failing one of its events fails them all",
			RefuseReason:   "the log refuses nothing for good: a Write that does not commit is retried",
		},
	})
}
