package sql_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

// drain reads n changes, acknowledging every batch as the runtime would.
func drain(b *testing.B, s core.Source, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout())
	defer cancel()
	got := 0
	for got < n {
		batch, err := s.Read(ctx)
		if err != nil {
			b.Fatalf("read after %d of %d: %v", got, n, err)
		}
		got += len(batch)
		if err := s.Ack(ctx, batch[len(batch)-1].Position); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCursorPostgres measures cursor polling of a PostgreSQL table:
// rows per second from the query to changes returned by Read and
// acknowledged.
func BenchmarkCursorPostgres(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	d := postgresDB(b)
	const rows = 200_000
	tbl := benchOrders(b, d, rows)
	b.ResetTimer()
	for range b.N {
		s := newSource(b, map[string]any{
			"driver": "postgres", "dsn": d.dsn, "schedule": "@every 1h", "table": tbl, "key": []any{"id"},
			"page_size": 5000, "cursor": map[string]any{"column": "updated_at", "type": "timestamp", "look_back": "1s"},
		})
		env := core.Env{Name: "bench", StateDir: b.TempDir()}
		if err := s.Open(context.Background(), env, core.Position{}); err != nil {
			b.Fatal(err)
		}
		drain(b, s, rows)
		s.Close(context.Background())
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// benchOrders creates and fills a PostgreSQL table of rows orders, one
// millisecond apart, and returns its name.
func benchOrders(b *testing.B, d *testDB, rows int) string {
	b.Helper()
	tbl := table("bench_orders")
	d.exec(b, "CREATE TABLE "+tbl+" (id BIGINT PRIMARY KEY, status TEXT NOT NULL, total NUMERIC(12,2) NOT NULL, updated_at TIMESTAMP(6) NOT NULL)")
	d.dropLater(b, tbl)
	d.exec(b, "CREATE INDEX "+tbl+"_cursor ON "+tbl+" (updated_at, id)")
	d.exec(b, "INSERT INTO "+tbl+" SELECT g, 'paid', g % 1000 + 0.5, TIMESTAMP '2024-01-01' + g * INTERVAL '1 millisecond' FROM generate_series(1, $1) g", rows)
	return tbl
}

// BenchmarkCursorEmbedded measures cursor polling of a PostgreSQL table
// through core/runtime into the embedded stream: rows per second from the
// query to events committed to the stream and checkpointed.
func BenchmarkCursorEmbedded(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	d := postgresDB(b)
	const rows = 200_000
	tbl := benchOrders(b, d, rows)
	// One rule through the rules engine and the catalog, as a configured
	// connector maps its rows.
	cat, err := catalog.New([]core.EventType{{
		Type: "com.example.order.changed", Version: "1",
		Schema: map[string]any{"type": "object", "required": []any{"id", "status"}},
	}}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile("bench", []core.Rule{{
		Name: "order_changed", Type: "com.example.order.changed",
		Subject: "string(after.id)", PartitionKey: "string(after.id)",
		Data: map[string]any{"id": "after.id", "status": "after.status", "total": "after.total", "updated_at": "after.updated_at"},
	}}, cat)
	if err != nil {
		b.Fatal(err)
	}
	mapper := runtime.Rules(set)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		st := embedded.New()
		if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(dir, "stream.db")})); err != nil {
			b.Fatal(err)
		}
		src := newSource(b, map[string]any{
			"driver": "postgres", "dsn": d.dsn, "schedule": "@every 1h", "table": tbl, "key": []any{"id"},
			"page_size": 5000, "cursor": map[string]any{"column": "updated_at", "type": "timestamp", "look_back": "1s"},
		})
		rt, err := runtime.New(runtime.Options{
			Stream:          st,
			Connectors:      []runtime.Connector{{Name: "bench", Type: "sql_poll", Source: src, Mapper: mapper}},
			StateDir:        dir,
			ShutdownTimeout: 30 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- rt.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for {
			s := rt.Status().Connectors[0]
			if s.EventsEmitted >= rows && s.InFlight == 0 {
				break
			}
			if time.Now().After(deadline) || s.State == runtime.StateFailed {
				b.Fatalf("stuck: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
}

// BenchmarkSnapshotDiff1M measures snapshot diffs of a 1,000,000-row
// SQLite table: the first run (every row a create, the index built as the
// changes are acknowledged) and a second run where 1% of rows changed,
// 0.5% vanished and 0.5% appeared. It reports each run's seconds and the
// process's peak resident memory.
func BenchmarkSnapshotDiff1M(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	rows := 1_000_000
	if v := os.Getenv("TRIBUTARY_BENCH_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v) // a smaller table for quick comparisons
	}
	for range b.N {
		dir := b.TempDir()
		d := sqliteDB(b, filepath.Join(dir, "source.db"))
		d.exec(b, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, balance INTEGER NOT NULL)")
		d.exec(b, "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) INSERT INTO customers SELECT n, 'customer ' || n, n * 7 FROM g", rows)
		env := core.Env{Name: "bench", StateDir: filepath.Join(dir, "state")}
		os.MkdirAll(env.StateDir, 0o755)
		values := map[string]any{"driver": "sqlite", "dsn": d.dsn, "schedule": "@every 1h", "mode": "snapshot", "table": "customers", "key": []any{"id"}, "page_size": 5000}
		goruntime.GC()
		start := time.Now()
		s := newSource(b, values)
		if err := s.Open(context.Background(), env, core.Position{}); err != nil {
			b.Fatal(err)
		}
		drain(b, s, rows)
		s.Close(context.Background())
		first := time.Since(start)

		d.exec(b, "UPDATE customers SET balance = balance + 1 WHERE id % 100 = 0")
		d.exec(b, "DELETE FROM customers WHERE id % 200 = 1")
		d.exec(b, "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?) INSERT INTO customers SELECT ? + n, 'new', 0 FROM g", rows/200, rows)
		// The diff run is due at once: a daily schedule whose last time
		// is after the first run's.
		if wait := time.Until(start.Add(1100 * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		t := time.Now().UTC().Truncate(time.Second)
		values["schedule"] = fmt.Sprintf("%d %d %d * * *", t.Second(), t.Minute(), t.Hour())
		start = time.Now()
		s = newSource(b, values)
		// A non-zero position keeps the index (a zero one resets it).
		if err := s.Open(context.Background(), env, core.Position{Version: 1, Data: []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
		drain(b, s, rows/100+rows/200+rows/200)
		s.Close(context.Background())
		second := time.Since(start)
		b.ReportMetric(first.Seconds(), "first-run-s")
		b.ReportMetric(second.Seconds(), "diff-run-s")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MB")
	}
}

// peakRSS returns the process's peak resident set size in bytes (VmHWM).
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// benchTimeout bounds one drain: TRIBUTARY_BENCH_TIMEOUT (a duration), or
// 10 minutes.
func benchTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("TRIBUTARY_BENCH_TIMEOUT")); err == nil {
		return d
	}
	return 10 * time.Minute
}
