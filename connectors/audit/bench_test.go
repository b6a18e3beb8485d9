package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tributary/tributary/core"
)

// BenchmarkWriteSQLite logs 1 KB events into a SQLite log (sync: full, as
// by default), one Write call per batch, and reports events/s. Their ids
// are random UUIDs, as event ids are, and their subjects are 64 order
// keys. The target is 50k events/s on a 2-core machine; README.md
// says what it reaches and what bounds it.
func BenchmarkWriteSQLite(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchmarkWrite(b, map[string]any{}, batch)
		})
	}
}

// BenchmarkWriteSQLiteConcurrent is BenchmarkWriteSQLite with Write
// called as the runtime calls it by default: 16 at once, 64 events each.
func BenchmarkWriteSQLiteConcurrent(b *testing.B) {
	s, _ := openSink(b, map[string]any{})
	const writers, batch = 16, 64
	var seq atomic.Int64
	b.SetBytes(batch * 1024)
	b.SetParallelism(writers / runtime.GOMAXPROCS(0))
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ds := benchDeliveries(batch)
		for pb.Next() {
			fillBench(ds, &seq)
			for _, r := range s.Write(context.Background(), ds) {
				if r.Status != core.StatusDelivered {
					b.Errorf("%s: %v", r.Status, r.Err)
					return
				}
			}
		}
	})
	b.ReportMetric(float64(seq.Load())/time.Since(start).Seconds(), "events/s")
}

// BenchmarkWritePostgres is BenchmarkWriteSQLite into the real PostgreSQL.
func BenchmarkWritePostgres(b *testing.B) {
	for _, batch := range []int{64, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			benchmarkWrite(b, postgresValues(b), batch)
		})
	}
}

func benchmarkWrite(b *testing.B, values map[string]any, batch int) {
	s, _ := openSink(b, values)
	ds := benchDeliveries(batch)
	var seq atomic.Int64
	ctx := context.Background()
	b.SetBytes(int64(batch) * 1024)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		fillBench(ds, &seq)
		for _, r := range s.Write(ctx, ds) {
			if r.Status != core.StatusDelivered {
				b.Fatalf("%s: %v", r.Status, r.Err)
			}
		}
	}
	b.ReportMetric(float64(seq.Load())/time.Since(start).Seconds(), "events/s")
}

// benchDeliveries returns n deliveries of events fillBench fills.
func benchDeliveries(n int) []core.Delivery {
	ds := make([]core.Delivery, n)
	for i := range ds {
		ds[i].Event = &core.Event{
			Source: "/tributary/orders", SpecVersion: core.SpecVersion, Type: "com.example.order.placed",
			DataContentType: "application/json",
		}
	}
	return ds
}

var benchPad = strings.Repeat("x", 1024-130)

// fillBench makes the events of ds new ones of about 1 KB: a random UUID
// id, one of 64 subjects, the current time.
func fillBench(ds []core.Delivery, seq *atomic.Int64) {
	for i := range ds {
		n := seq.Add(1)
		e := ds[i].Event
		e.ID = uuid.NewString()
		e.Subject = fmt.Sprintf("o-%d", n%64)
		e.PartitionKey = e.Subject
		e.Time = time.Now()
		e.Data = json.RawMessage(fmt.Sprintf(`{"order_id":"o-%d","n":%d,"pad":"%s"}`, n%64, n, benchPad))
	}
}
