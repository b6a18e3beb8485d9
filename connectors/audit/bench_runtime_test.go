package audit_test

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
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

const benchType = "com.example.order.accepted"

// BenchmarkSinkRuntime measures events/s logged by the audit sink into
// SQLite (its default, in the state directory, sync: full) through the
// sink runtime with its defaults (16 Writes of at most 64 deliveries at
// once): b.N 1 KB events of 64 keys are appended to the stream first,
// then the runtime starts and logs them all; the time runs from the start
// of the runtime until the sink's status counts every event delivered.
// "memory" reads the in-memory stream, to show the sink and the runtime
// alone; "embedded" reads the embedded stream, which then shares the two
// cores. One op is one event. The target is 50k events/s on a
// 2-core machine.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, stream := range []string{"memory", "embedded"} {
		b.Run(stream, func(b *testing.B) {
			dir := b.TempDir()
			topic := "events." + benchType
			evs := benchEvents(b.N)
			var st core.Stream
			switch stream {
			case "memory":
				ms := memstream.New()
				for i := 0; i < len(evs); i += 512 {
					msgs := make([]*message.Message, 0, 512)
					for _, ev := range evs[i:min(i+512, len(evs))] {
						msgs = append(msgs, ev.ToMessage())
					}
					if err := ms.Publisher().Publish(topic, msgs...); err != nil {
						b.Fatal(err)
					}
				}
				st = ms
			case "embedded":
				es := embedded.New()
				if err := es.Configure(core.NewConfig("stream", map[string]any{})); err != nil {
					b.Fatal(err)
				}
				prefill(b, es, dir, topic, evs)
				st = es
			}
			s := audit.New()
			if err := s.Configure(core.NewConfig("audit_log", map[string]any{})); err != nil {
				b.Fatalf("configure the audit sink: %v", err)
			}
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			r := run(b, st, dir, runtime.Sink{Name: "audit_log", Type: audit.Type, Sink: s, From: core.FromBeginning})
			deadline := start.Add(30*time.Second + time.Duration(b.N)*time.Millisecond)
			for {
				st := status(r)
				if st.Delivered >= uint64(b.N) {
					break
				}
				if st.DeadLettered != 0 || time.Now().After(deadline) {
					b.Fatalf("%d of %d events logged; status %+v", st.Delivered, b.N, st)
				}
				time.Sleep(2 * time.Millisecond)
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// benchEvents returns n events of about 1 KB of JSON data, with ids as
// connectors derive them (name-based UUIDs, in no order), keys order-0 ..
// order-63 in turn.
func benchEvents(n int) []*core.Event {
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*core.Event, n)
	for i := range out {
		key := "order-" + strconv.Itoa(i%64)
		out[i] = &core.Event{
			ID: core.EventID("erp_orders", core.Position{Version: 1, Data: []byte(strconv.Itoa(i))}, "r"), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: benchType, Subject: key, PartitionKey: key, DataContentType: "application/json",
			Time: t0.Add(time.Duration(i) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, i, pad),
		}
	}
	return out
}

// prefill opens st in dir, appends evs to topic in batches of 512, waits
// until every one is durable, and closes st again for the runtime to open.
func prefill(b *testing.B, st core.Stream, dir, topic string, evs []*core.Event) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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

// run starts the runtime on st (which it opens, in dir) with sink, and
// stops it when b ends.
func run(b *testing.B, st core.Stream, dir string, sink runtime.Sink) *runtime.Runtime {
	b.Helper()
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "per_type", Prefix: "events."},
		EventTypes:      []string{benchType},
		Sinks:           []runtime.Sink{sink},
		StateDir:        dir,
		Registerer:      prometheus.NewRegistry(),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second,
		DrainTimeout:    5 * time.Second,
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
		if s.Name == "audit_log" {
			return s
		}
	}
	return runtime.SinkStatus{}
}

// cpuTime returns the CPU time the process has used so far: a figure
// that other work on a shared machine distorts less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
