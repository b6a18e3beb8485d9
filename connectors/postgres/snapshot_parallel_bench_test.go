package postgres_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// BenchmarkSnapshotParallel reads the initial snapshot of 4 tables of
// 50k rows each (TRIBUTARY_BENCH_SNAPSHOT_ROWS rows per table) through
// Open, Read and Ack, with snapshot.parallel 1 and 4: the connector's own
// snapshot rate, without the runtime and without streaming.
func BenchmarkSnapshotParallel(b *testing.B) {
	perTable := 50_000
	if v := os.Getenv("TRIBUTARY_BENCH_SNAPSHOT_ROWS"); v != "" {
		var err error
		if perTable, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TRIBUTARY_BENCH_SNAPSHOT_ROWS: %v", err)
		}
	}
	d := newDB(b)
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		tb := d.table(n)
		d.exec(b,
			sprintf(`create table %s (id bigint primary key, name text, total numeric(12,2), created timestamptz)`, tb),
			sprintf(`insert into %s select g, 'order ' || g, g * 1.25, now() from generate_series(1, %d) g`, tb, perTable))
	}
	d.exec(b, "analyze")
	n := perTable * len(names)
	for _, parallel := range []int{1, 4} {
		b.Run(sprintf("parallel=%d", parallel), func(b *testing.B) {
			cfg := d.config(names...)
			cfg["snapshot"] = map[string]any{"mode": "initial", "parallel": parallel}
			ctx := context.Background()
			var total time.Duration
			for b.Loop() {
				start := time.Now()
				src := newSource(b, cfg)
				if err := src.Open(ctx, core.Env{Name: "bench"}, core.Position{}); err != nil {
					b.Fatal(err)
				}
				got := 0
				for got < n {
					batch, err := src.Read(ctx)
					if err != nil {
						b.Fatal(err)
					}
					got += len(batch)
					if err := src.Ack(ctx, batch[len(batch)-1].Position); err != nil {
						b.Fatal(err)
					}
				}
				total += time.Since(start)
				b.StopTimer()
				closeSource(b, src)
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
		})
	}
}
