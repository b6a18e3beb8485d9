package retail_test

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary/tributary/cmd/tributary/cli"
	_ "github.com/tributary/tributary/connectors/all"
	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
	"github.com/tributary/tributary/examples/retail/sim"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRetailEndToEnd runs the example's own tributary.yaml on the
// embedded stream with the simulated legacy systems on the real
// PostgreSQL and MariaDB, drives 100 orders through them, and checks
// that every order reaches shipped; that the audit log holds exactly each
// order's four events; that the warehouse received every CustomerBilled;
// that the shipping partner's CSV files hold every shipped order; and
// that replaying the shipped orders into the reporting table adds no row.
func TestRetailEndToEnd(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { retailEndToEnd(t, "tributary.yaml") })
	t.Run("kafka", func(t *testing.T) {
		// The same file with its one stream line changed, as the README
		// shows.
		brokers := servicetest.Kafka(t)
		b, err := os.ReadFile("tributary.yaml")
		if err != nil {
			t.Fatal(err)
		}
		const line = "stream: {type: embedded, topics: {mode: single, name: \"${RETAIL_TOPIC:-retail.events}\"}}\n"
		if !strings.Contains(string(b), line) {
			t.Fatalf("tributary.yaml has no line %q", line)
		}
		file := filepath.Join(t.TempDir(), "tributary.yaml")
		// Test runs share the broker: a checkpoint topic of this run's own,
		// or the connectors would resume from an earlier run's checkpoints.
		kafka := fmt.Sprintf("stream: {type: kafka, config: {brokers: [%q], checkpoint_topic: tributary.checkpoints.retail-%d}, topics: {mode: single, name: \"${RETAIL_TOPIC:-retail.events}\"}}\n", brokers[0], time.Now().UnixNano())
		if err := os.WriteFile(file, []byte(strings.Replace(string(b), line, kafka, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		retailEndToEnd(t, file)
	})
}

func retailEndToEnd(t *testing.T, configFile string) {
	pgURL := servicetest.Postgres(t)
	myDSN := servicetest.MySQL(t)
	const orders = 100
	run := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	dir := t.TempDir()
	admin, httpAddr, simAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	shipping := filepath.Join(dir, "shipping")
	report := "retail_shipments_" + run
	for k, v := range map[string]string{
		"RETAIL_STATE": filepath.Join(dir, "state"), "RETAIL_ADMIN": admin, "RETAIL_HTTP": httpAddr, "RETAIL_SIM": simAddr,
		"RETAIL_PG_URL": pgURL, "RETAIL_MYSQL_DSN": myDSN, "RETAIL_SLOT": "tributary_retail_" + run, "RETAIL_SNAPSHOT": "never",
		"RETAIL_TOPIC": "retail.events." + run, "RETAIL_SHIPPING_DIR": shipping, "RETAIL_SHIPPING_EVERY": "1s", "RETAIL_REPORT_TABLE": report,
		// A replica id of this run's own: MariaDB refuses a second replica
		// with the id of one it still counts as connected.
		"RETAIL_MYSQL_SERVER_ID": fmt.Sprint(100000 + time.Now().UnixNano()%1000000),
	} {
		t.Setenv(k, v)
	}
	pg, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// Slots of earlier runs that never reached their cleanup (a run killed
	// by a timeout) hold WAL and the server's few slots: drop them first.
	if _, err := pg.ExecContext(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'tributary\\_retail\\_t%' AND NOT active"); err != nil {
		t.Fatalf("dropping the replication slots earlier runs left: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = pg.ExecContext(ctx, "DROP TABLE IF EXISTS "+report)
		_, _ = pg.ExecContext(ctx, "DROP PUBLICATION IF EXISTS tributary_retail_"+run)
		// The slot would hold WAL, and one of the server's few slots, on
		// the shared server: drop it once the stopped sidecar's connection
		// is gone (the server notices a moment after the close).
		slot := "tributary_retail_" + run
		for deadline := time.Now().Add(15 * time.Second); ; {
			var left int
			_, _ = pg.ExecContext(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", slot)
			if err := pg.QueryRowContext(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&left); err != nil || left == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("replication slot %s is still there 15s after the sidecar stopped", slot)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	// The legacy systems first: the order entry and CRM tables exist
	// before the sidecar captures them.
	s, err := sim.Start(context.Background(), sim.Config{
		PostgresURL: pgURL, MySQLDSN: myDSN, Listen: simAddr,
		WebhookURL: "http://" + httpAddr + "/hooks/warehouse", WebhookSecret: "whsec_cmV0YWlsLWRlbW8td2FyZWhvdXNlLXNlY3JldA==",
		BillingToken: "billing-demo-token", Prefix: run + "-", Orders: orders, Interval: 10 * time.Millisecond,
		CustomerEvery: 4, ThrottleEvery: 7, BillAfter: 200 * time.Millisecond, PickAfter: 100 * time.Millisecond, ShipAfter: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	sc, err := cli.Build(core.DefaultRegistry, configFile, io.Discard)
	if err != nil {
		t.Fatalf("the example's configuration: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sidecar: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the sidecar did not stop within 30s")
		}
	}()
	waitFor(t, 60*time.Second, "the sidecar ready", func() (bool, string) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK, string(b)
	})

	ids, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}

	for _, id := range ids {
		waitFor(t, 90*time.Second, "order "+id+" shipped", func() (bool, string) {
			resp, err := http.Get("http://" + admin + "/v1/entities/order/" + id)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			var in struct {
				State string `json:"state"`
			}
			b, _ := io.ReadAll(resp.Body)
			_ = json.Unmarshal(b, &in)
			return in.State == "shipped", string(b)
		})
	}

	// The warehouse received every CustomerBilled.
	picked := s.Picked()
	for _, id := range ids {
		if picked[id] == 0 {
			t.Errorf("the warehouse never received the billing of %s", id)
		}
	}

	// The audit log holds each order's four events, once.
	waitFor(t, 30*time.Second, "the audit log to hold every order's events", func() (bool, string) {
		db, err := audit.Open(ctx, audit.Config{Driver: audit.DriverSQLite, Path: "audit.db", TablePrefix: "audit_", MaxConns: 1}, runtime.SinkStateDir(filepath.Join(dir, "state"), "audit_log"))
		if err != nil {
			return false, err.Error()
		}
		defer db.Close()
		for _, id := range ids {
			evs, err := audit.Search(ctx, db, audit.Query{Subject: id})
			if err != nil {
				return false, err.Error()
			}
			var types []string
			for _, e := range evs {
				types = append(types, strings.TrimPrefix(e.Type, "com.retail."))
			}
			slices.Sort(types)
			want := []string{"customer.billed", "order.accepted", "order.ready_for_shipment", "order.shipped"}
			if !slices.Equal(types, want) {
				return false, fmt.Sprintf("order %s: audit log holds %v, want %v", id, types, want)
			}
		}
		return true, ""
	})

	// The shipping partner's files hold every shipped order.
	waitFor(t, 30*time.Second, "every shipped order in the CSV files", func() (bool, string) {
		got := csvOrders(t, shipping)
		for _, id := range ids {
			if got[id] == 0 {
				return false, fmt.Sprintf("%d orders in the files; %s missing", len(got), id)
			}
		}
		return true, ""
	})

	// Replaying the shipped orders into the reporting table adds no row.
	countRows := func() int {
		var n int
		if err := pg.QueryRowContext(ctx, "SELECT count(*) FROM "+report+" WHERE order_id LIKE $1", run+"-%").Scan(&n); err != nil {
			t.Fatalf("count the report's rows: %v", err)
		}
		return n
	}
	waitFor(t, 30*time.Second, "the report's rows", func() (bool, string) {
		n := countRows()
		return n == orders, fmt.Sprintf("%d rows", n)
	})
	rep, _, err := sc.Replay(ctx, "shipments_report", runtime.ReplayFilter{Types: []string{"com.retail.order.shipped"}}, "retail test", nil)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if rep.Count < orders {
		t.Errorf("replay delivered %d events, want at least %d", rep.Count, orders)
	}
	if n := countRows(); n != orders {
		t.Errorf("after the replay the report holds %d rows of this run, want %d", n, orders)
	}
}

// csvOrders counts the order ids in the completed CSV files of dir.
func csvOrders(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".csv") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		for i, r := range rows {
			if i == 0 && r[0] == "order_id" {
				continue
			}
			out[r[0]]++
		}
	}
	return out
}

// waitFor polls cond until it holds or d passes, then fails with its last
// word.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
