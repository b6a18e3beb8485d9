package postgres_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// benchRows is the load of the stream benchmarks: single-row inserts in
// 1k-row transactions. TRIBUTARY_BENCH_ROWS=1000000 gives the README's
// figures.
func benchRows(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("TRIBUTARY_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TRIBUTARY_BENCH_ROWS: %v", err)
		}
	}
	return n
}

// loadRows commits n rows as single-row inserts in 1k-row transactions.
func loadRows(b *testing.B, d *db, table string, from, n int) {
	b.Helper()
	for start := from; start < from+n; start += 1000 {
		end := min(start+999, from+n-1)
		d.exec(b, sprintf(`insert into %s select g, 'order ' || g, g * 1.25, now() from generate_series(%d, %d) g`, table, start, end))
	}
}

func benchTable(b *testing.B) (*db, string) {
	d := newDB(b)
	tb := d.table("bench")
	d.exec(b, sprintf(`create table %s (id bigint primary key, name text, total numeric(12,2), created timestamptz)`, tb))
	return d, tb
}

// BenchmarkStream decodes committed inserts through Open, Read and Ack:
// the connector's own rate, without the runtime. The load is committed
// while the connector is closed, so the time is all decoding.
func BenchmarkStream(b *testing.B) {
	d, tb := benchTable(b)
	n := benchRows(b)
	cfg := neverSnapshot(d.config("bench"))
	closeSource(b, openSource(b, cfg, core.Position{})) // publication and slot
	ctx := context.Background()
	next := 1
	var from core.Position
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		loadRows(b, d, tb, next, n)
		next += n
		b.StartTimer()
		start := time.Now()
		src := newSource(b, cfg)
		if err := src.Open(ctx, core.Env{Name: "bench"}, from); err != nil {
			b.Fatal(err)
		}
		got := 0
		for got < n {
			batch, err := src.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			got += len(batch)
			from = batch[len(batch)-1].Position
			if err := src.Ack(ctx, from); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
		closeSource(b, src)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
}

// BenchmarkRecvlogical is the ceiling: pg_recvlogical decoding the same
// load from its own slot into /dev/null.
func BenchmarkRecvlogical(b *testing.B) {
	bin, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_recvlogical")
	if len(bin) == 0 {
		b.Skip("pg_recvlogical not installed (Debian package postgresql)")
	}
	d, tb := benchTable(b)
	n := benchRows(b)
	// Create the publication through the connector, then a second slot.
	closeSource(b, openSource(b, neverSnapshot(d.config("bench")), core.Position{}))
	slot := d.prefix + "_recv"
	d.exec(b, sprintf(`select pg_create_logical_replication_slot('%s', 'pgoutput')`, slot))
	b.Cleanup(func() { _, _ = d.pool.Exec(context.Background(), `select pg_drop_replication_slot($1)`, slot) })
	next := 1
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		loadRows(b, d, tb, next, n)
		next += n
		end := d.currentLSN(b)
		b.StartTimer()
		start := time.Now()
		cmd := exec.Command(bin[0], "-d", d.url, "-S", slot, "--start", "-f", "/dev/null", "-E", end.String(),
			"-o", "proto_version=1", "-o", "publication_names="+d.publication(), "--no-loop")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pg_recvlogical: %v: %s", err, out)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
}

// BenchmarkStreamEmbedded runs the same load through the runtime into the
// embedded stream, from the runtime's start until every change's events
// are durable and their checkpoint stored. The load is committed while the
// sidecar is down.
func BenchmarkStreamEmbedded(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	d, tb := benchTable(b)
	n := benchRows(b)
	cfg := benchMaxBatch(neverSnapshot(d.config("bench")))
	closeSource(b, openSource(b, cfg, core.Position{})) // publication and slot
	dir := b.TempDir()
	mapper := runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		data, _ := json.Marshal(ch.After)
		return []runtime.Output{{Rule: "r", Event: &core.Event{
			ID: core.EventID("bench", ch.Position, "r"), Source: "/bench", SpecVersion: core.SpecVersion,
			Type: "com.example.order.placed", DataContentType: "application/json", Data: data,
			PartitionKey: sprintf("%v", ch.Key["id"]),
		}}}
	})
	next := 1
	var total time.Duration
	rss := 0.0
	for b.Loop() {
		b.StopTimer()
		loadRows(b, d, tb, next, n)
		next += n
		st := embedded.New()
		if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(dir, "stream.db")})); err != nil {
			b.Fatal(err)
		}
		rt, err := runtime.New(runtime.Options{
			Stream:          st,
			Connectors:      []runtime.Connector{{Name: "bench", Type: "postgres_cdc", Source: newSource(b, cfg), Mapper: mapper, MaxInFlight: benchInFlight()}},
			StateDir:        dir,
			ShutdownTimeout: 30 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		resetPeakRSS()
		start := time.Now()
		go func() { done <- rt.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for {
			s := rt.Status().Connectors[0]
			if s.EventsEmitted >= uint64(n) && s.InFlight == 0 {
				break
			}
			if time.Now().After(deadline) || s.State == runtime.StateFailed {
				b.Fatalf("stuck: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		rss = max(rss, peakRSS())
		b.StopTimer()
		if s := rt.Status().Connectors[0]; s.Errors > 0 {
			b.Logf("errors during the run: %d, last %s", s.Errors, s.Error)
		}
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
	b.ReportMetric(rss, "peak-rss-MB")
}
