package audit_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// backend is a database the audit log runs on: values returns the sink's
// configuration for a fresh log of the test, which it removes at cleanup.
type backend struct {
	name   string
	values func(t testing.TB) map[string]any
}

// backends are SQLite and the real PostgreSQL (skipped without it, a
// failure when services are required).
var backends = []backend{
	{name: "sqlite", values: func(testing.TB) map[string]any { return map[string]any{} }},
	{name: "postgres", values: postgresValues},
}

var prefixSeq atomic.Int64

// postgresValues configures a log in the real PostgreSQL under a table
// prefix of its own, whose tables are dropped at cleanup.
func postgresValues(t testing.TB) map[string]any {
	t.Helper()
	dsn := servicetest.Postgres(t)
	prefix := fmt.Sprintf("audit_test_%d_%d_", time.Now().UnixNano()%1_000_000_000, prefixSeq.Add(1))
	t.Cleanup(func() {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Errorf("drop test tables: %v", err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP TABLE IF EXISTS " + prefix + "events, " + prefix + "replays"); err != nil {
			t.Errorf("drop test tables: %v", err)
		}
	})
	return map[string]any{"driver": "postgres", "dsn": dsn, "table_prefix": prefix}
}

// forEachBackend runs f as a subtest on each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, values map[string]any)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.values(t)) })
	}
}

// openSink configures and opens an audit sink on values (plus extra),
// with a state directory of its own that it returns; the sink is closed
// at cleanup.
func openSink(t testing.TB, values map[string]any, extra ...any) (*audit.Sink, string) {
	t.Helper()
	v := map[string]any{}
	for k, x := range values {
		v[k] = x
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v[extra[i].(string)] = extra[i+1]
	}
	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", v)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "audit_log", StateDir: dir, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, dir
}

// event returns the i-th test event: order o-(i%7), alternating types,
// one second apart from a fixed time.
func event(i int) *core.Event {
	types := []string{"com.example.order.placed", "com.example.order.shipped"}
	return &core.Event{
		ID:              fmt.Sprintf("ev-%05d", i),
		Source:          "/tributary/orders",
		SpecVersion:     core.SpecVersion,
		Type:            types[i%2],
		Subject:         fmt.Sprintf("o-%d", i%7),
		Time:            base.Add(time.Duration(i) * time.Second),
		DataContentType: "application/json",
		Data:            json.RawMessage(fmt.Sprintf(`{"n":%d,"total":"12.50"}`, i)),
		PartitionKey:    fmt.Sprintf("o-%d", i%7),
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// deliveries wraps events as deliveries.
func deliveries(evs ...*core.Event) []core.Delivery {
	out := make([]core.Delivery, len(evs))
	for i, e := range evs {
		out[i] = core.Delivery{Event: e}
	}
	return out
}

// eventRange returns events from..to-1.
func eventRange(from, to int) []*core.Event {
	var out []*core.Event
	for i := from; i < to; i++ {
		out = append(out, event(i))
	}
	return out
}

// write writes ds and fails unless every delivery is delivered.
func write(t testing.TB, s *audit.Sink, ds []core.Delivery) {
	t.Helper()
	for i, r := range s.Write(context.Background(), ds) {
		if r.Status != core.StatusDelivered {
			t.Fatalf("delivery %d (%s): %s: %v", i, ds[i].Event.ID, r.Status, r.Err)
		}
	}
}

// search runs q on the sink's log.
func search(t testing.TB, s *audit.Sink, q audit.Query) []core.Event {
	t.Helper()
	evs, err := audit.Search(context.Background(), s.DB(), q)
	if err != nil {
		t.Fatalf("search %+v: %v", q, err)
	}
	return evs
}

// ids returns the ids of evs, comma-separated.
func ids(evs []core.Event) string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return strings.Join(out, ",")
}

// count returns how many rows the sink's events table holds.
func count(t testing.TB, s *audit.Sink, values map[string]any) int {
	t.Helper()
	var n int
	if err := s.DB().SQL().QueryRow("SELECT count(*) FROM " + prefix(values) + "events").Scan(&n); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

// prefix is the table prefix values configure.
func prefix(values map[string]any) string {
	if p, ok := values["table_prefix"].(string); ok {
		return p
	}
	return "audit_"
}

// refuse makes the log refuse the event with id (a trigger raising an
// error) until the function it returns is called.
func refuse(t testing.TB, s *audit.Sink, values map[string]any, id string) (lift func()) {
	t.Helper()
	table := prefix(values) + "events"
	db := s.DB().SQL()
	var install, remove []string
	if values["driver"] == "postgres" {
		install = []string{
			`CREATE FUNCTION ` + table + `_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = '` + id + `' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse BEFORE INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION ` + table + `_refuse()`,
		}
		remove = []string{`DROP TRIGGER refuse ON ` + table, `DROP FUNCTION ` + table + `_refuse()`}
	} else {
		install = []string{`CREATE TRIGGER refuse BEFORE INSERT ON ` + table + ` WHEN NEW.id = '` + id + `' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`}
		remove = []string{`DROP TRIGGER refuse`}
	}
	exec := func(qs []string) {
		for _, q := range qs {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(install)
	return func() { exec(remove) }
}

// checkRetried checks the results of a Write that did not commit: every
// delivery is to be retried, the first of each key with an error saying
// want, the later ones of its key with none (not attempted on their own).
func checkRetried(t testing.TB, ds []core.Delivery, rs []core.Result, want string) {
	t.Helper()
	seen := map[string]bool{}
	for i, r := range rs {
		first := !seen[ds[i].Event.PartitionKey]
		seen[ds[i].Event.PartitionKey] = true
		switch {
		case r.Status != core.StatusRetry:
			t.Fatalf("delivery %d: %s, %v; want retry", i, r.Status, r.Err)
		case first && (r.Err == nil || !strings.Contains(r.Err.Error(), want)):
			t.Fatalf("delivery %d, the first of key %s: error %v; want one saying %q", i, ds[i].Event.PartitionKey, r.Err, want)
		case !first && r.Err != nil:
			t.Fatalf("delivery %d, a later one of key %s: error %v; want none", i, ds[i].Event.PartitionKey, r.Err)
		}
	}
}
