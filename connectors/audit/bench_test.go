package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	pad := strings.Repeat("x", 1024-130)
	ds := make([]core.Delivery, batch)
	for i := range ds {
		ds[i].Event = &core.Event{
			Source: "/tributary/orders", SpecVersion: core.SpecVersion, Type: "com.example.order.placed",
			DataContentType: "application/json", Time: time.Now(),
		}
	}
	ctx := context.Background()
	n := 0
	b.SetBytes(int64(batch) * 1024)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		for i := range ds {
			e := ds[i].Event
			e.ID = uuid.NewString()
			e.Subject = fmt.Sprintf("o-%d", n%64)
			e.PartitionKey = e.Subject
			e.Data = json.RawMessage(fmt.Sprintf(`{"order_id":"o-%d","n":%d,"pad":"%s"}`, n%1000, n, pad))
			n++
		}
		for _, r := range s.Write(ctx, ds) {
			if r.Status != core.StatusDelivered {
				b.Fatalf("%s: %v", r.Status, r.Err)
			}
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
