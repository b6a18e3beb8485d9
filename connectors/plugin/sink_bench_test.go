package plugin_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
)

// BenchmarkSinkPlugin measures events per second through a sink plugin:
// 4 goroutines write batches of 64 1 KB events (64 keys, with a mapped
// value) to the test sink (see TestMain), which appends each event's id
// to a file; in process, as a plugin over gRPC, and as a plugin over JSON
// Lines. One op is one event. Run with a fixed count, such as
//
//	go test ./connectors/plugin -run '^$' -bench SinkPlugin -benchtime 200000x
func BenchmarkSinkPlugin(b *testing.B) {
	for _, name := range []string{"inprocess", "grpc", "jsonl"} {
		b.Run(name, func(b *testing.B) {
			file := b.TempDir() + "/ids"
			var s core.Sink
			if name == "inprocess" {
				ts := &testSink{}
				if err := ts.Configure(core.NewConfig("bench", map[string]any{"file": file})); err != nil {
					b.Fatal(err)
				}
				s = ts
			} else {
				ps := connplugin.NewSink()
				if err := ps.Configure(core.NewConfig("bench", self(b, name, map[string]any{"file": file}))); err != nil {
					b.Fatal(err)
				}
				s = ps
			}
			if err := s.Open(context.Background(), core.Env{Name: "bench", StateDir: b.TempDir()}); err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			pad := strings.Repeat("x", 1024-110)
			const workers, batch = 4, 64
			per := (b.N + workers - 1) / workers
			b.SetBytes(1024)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for done := 0; done < per; done += batch {
						ds := make([]core.Delivery, min(batch, per-done))
						for i := range ds {
							n := w*per + done + i
							key := "order-" + strconv.Itoa(n%64)
							ds[i] = core.Delivery{Event: &core.Event{
								ID: "ev-" + strconv.Itoa(n), Source: "/bench", SpecVersion: core.SpecVersion,
								Type: "com.example.order.accepted", Subject: key, PartitionKey: key, DataContentType: "application/json",
								Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
								Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, n, pad),
							}, Data: map[string]any{"order_id": key, "total": "129.90"}}
						}
						for _, r := range s.Write(context.Background(), ds) {
							if r.Status != core.StatusDelivered {
								b.Errorf("delivery: %s (%v)", r.Status, r.Err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			ids, err := readIDs(file)
			if err != nil || len(ids) != per*workers {
				b.Fatalf("the target took %d events (%v), want %d", len(ids), err, per*workers)
			}
			b.ReportMetric(float64(per*workers)/elapsed.Seconds(), "events/s")
			os.Remove(file)
		})
	}
}
