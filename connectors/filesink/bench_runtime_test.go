package filesink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

const benchType = "com.example.order.accepted"

// BenchmarkSinkRuntime measures events/s written by the files sink (JSON
// Lines of the CloudEvents) through the sink runtime from the embedded
// stream: b.N 1 KB events of 64 keys are appended first, then the runtime
// starts; the time runs until the sink's status counts every event
// delivered. Each Write waits for its file, so a file completes each time
// the runtime's Writes all wait and no event comes for linger (20ms by
// default). "defaults" is the runtime's and the sink's defaults;
// "batch1000" sets max_batch: 1000 and max_events: 16000.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, v := range []struct {
		name      string
		batch     int
		maxEvents int
	}{{"defaults", 0, 100000}, {"batch1000", 1000, 16000}} {
		b.Run(v.name, func(b *testing.B) {
			dir := b.TempDir()
			es := embedded.New()
			if err := es.Configure(core.NewConfig("stream", map[string]any{})); err != nil {
				b.Fatal(err)
			}
			evs := benchEvents(b.N)
			prefill(b, es, dir, "events."+benchType, evs)
			s := filesink.New()
			if err := s.Configure(core.NewConfig("drop", map[string]any{"dir": b.TempDir(), "max_events": v.maxEvents})); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start := time.Now()
			r := run(b, es, dir, runtime.Sink{Name: "drop", Type: filesink.Type, Sink: s, From: core.FromBeginning, MaxBatch: v.batch})
			deadline := start.Add(60*time.Second + time.Duration(b.N)*10*time.Millisecond)
			for {
				st := status(r)
				if st.Delivered >= uint64(b.N) {
					break
				}
				if st.DeadLettered != 0 || time.Now().After(deadline) {
					b.Fatalf("%d of %d events written; status %+v", st.Delivered, b.N, st)
				}
				time.Sleep(2 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

func benchEvents(n int) []*core.Event {
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*core.Event, n)
	for i := range out {
		key := "order-" + strconv.Itoa(i%64)
		out[i] = &core.Event{
			ID: "ev-" + strconv.Itoa(i), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: benchType, Subject: key, PartitionKey: key, DataContentType: "application/json",
			Time: t0.Add(time.Duration(i) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, i, pad),
		}
	}
	return out
}

func prefill(b *testing.B, st core.Stream, dir, topic string, evs []*core.Event) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := st.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		b.Fatalf("open the stream: %v", err)
	}
	pub := st.Publisher().(core.EventPublisher)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < len(evs); i += 512 {
		wg.Add(1)
		if err := pub.PublishEvents(ctx, topic, evs[i:min(i+512, len(evs))], func(err error) {
			if err != nil {
				failed.Store(err)
			}
			wg.Done()
		}); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("publish: %v", err)
	}
	if err := st.Close(ctx); err != nil {
		b.Fatalf("close the stream: %v", err)
	}
}

func run(b *testing.B, st core.Stream, dir string, sink runtime.Sink) *runtime.Runtime {
	b.Helper()
	r, err := runtime.New(runtime.Options{
		Stream: st, Topics: runtime.Topics{Mode: "per_type", Prefix: "events."}, EventTypes: []string{benchType},
		Sinks: []runtime.Sink{sink}, StateDir: dir, Registerer: prometheus.NewRegistry(),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		b.Fatalf("runtime.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				b.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("Run did not return within 30s of the cancel")
		}
	})
	return r
}

func status(r *runtime.Runtime) runtime.SinkStatus {
	for _, s := range r.Status().Sinks {
		if s.Name == "drop" {
			return s
		}
	}
	return runtime.SinkStatus{}
}
