package http_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/connectors/embedded"
	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// The benchmarks of this file run the http sink as the sidecar does:
// through the sink runtime, reading a real stream (the embedded one, or
// Kafka on the test broker) through its consumer group, delivering 1 KB
// events of 64 keys to a local receiver that reads each body and answers
// 200 at once. The sink and the runtime keep their defaults (16 Writes of
// at most 64 deliveries at once, 16 requests in flight, structured
// CloudEvents), as a configuration that sets only a url gets.

const (
	benchType = "com.example.order.accepted"
	benchKeys = 64
)

// benchStream configures the named stream ("embedded" or "kafka") for b
// and returns it, not opened, with the state directory it and the runtime
// share and the topic layout the runtime uses on it. Every call gets
// topics of its own.
func benchStream(b *testing.B, name string) (core.Stream, string, runtime.Topics) {
	b.Helper()
	var st core.Stream
	values := map[string]any{}
	switch name {
	case "embedded":
		st = embedded.New()
	case "kafka":
		st = kafka.New()
		var brokers []any
		for _, br := range servicetest.Kafka(b) {
			brokers = append(brokers, br)
		}
		values["brokers"] = brokers
	}
	if err := st.Configure(core.NewConfig("stream", values)); err != nil {
		b.Fatalf("configure %s stream: %v", name, err)
	}
	return st, b.TempDir(), runtime.Topics{Mode: "per_type", Prefix: "bench-" + watermill.NewShortUUID() + "."}
}

// prefill opens st, appends evs to it in batches of 512, waits until every
// one is durable, and closes st again for the runtime to open.
func prefill(b *testing.B, st core.Stream, dir, topic string, evs []*core.Event) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := st.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		b.Fatalf("open the stream: %v", err)
	}
	publishAll(b, st, topic, evs)
	if err := st.Close(ctx); err != nil {
		b.Fatalf("close the stream: %v", err)
	}
}

// benchEvents returns n events of about 1 KB of JSON data, ids
// "<prefix><i>", keys order-0 .. order-63 in turn.
func benchEvents(prefix string, n int) []*core.Event {
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*core.Event, n)
	for i := range out {
		key := "order-" + strconv.Itoa(i%benchKeys)
		out[i] = &core.Event{
			ID: prefix + strconv.Itoa(i), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: benchType, Subject: key, PartitionKey: key, DataContentType: "application/json",
			Time: t0.Add(time.Duration(i) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, i, pad),
		}
	}
	return out
}

// publishAll appends evs to the stream in batches of 512 and waits until
// every one is durable.
func publishAll(b *testing.B, st core.Stream, topic string, evs []*core.Event) {
	b.Helper()
	pub, ok := st.Publisher().(core.EventPublisher)
	if !ok {
		b.Fatal("the stream's publisher does not publish events")
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < len(evs); i += 512 {
		wg.Add(1)
		if err := pub.PublishEvents(context.Background(), topic, evs[i:min(i+512, len(evs))], func(err error) {
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
}

// benchReceiver is the endpoint: it reads each body, calls seen with the
// delivery's webhook-id, and answers 200.
func benchReceiver(b *testing.B, seen func(id string)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seen(r.Header.Get("Webhook-Id"))
	}))
	b.Cleanup(srv.Close)
	return srv
}

// runSink starts the runtime on st (which the runtime opens, in dir) with
// one http sink named bench delivering to url (values add sink keys), and
// stops it when b ends.
func runSink(b *testing.B, st core.Stream, dir string, topics runtime.Topics, url string, values map[string]any) *runtime.Runtime {
	b.Helper()
	s := sink.New()
	cfg := map[string]any{"url": url}
	for k, v := range values {
		cfg[k] = v
	}
	if err := s.Configure(core.NewConfig("bench", cfg)); err != nil {
		b.Fatalf("configure the http sink: %v", err)
	}
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          topics,
		EventTypes:      []string{benchType},
		Sinks:           []runtime.Sink{{Name: "bench", Type: sink.Type, Sink: s, From: core.FromBeginning}},
		StateDir:        dir,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:      prometheus.NewRegistry(),
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

// sinkStatus returns the status of the sink named bench.
func sinkStatus(r *runtime.Runtime) runtime.SinkStatus {
	for _, s := range r.Status().Sinks {
		if s.Name == "bench" {
			return s
		}
	}
	return runtime.SinkStatus{}
}

// BenchmarkSinkRuntime measures events/s delivered by the http sink
// through the sink runtime: b.N 1 KB events of 64 keys are appended to
// the stream first, then the runtime starts and delivers them all; the
// time runs from the start of the runtime to the last event's arrival at
// the receiver (the group's first join included). One op is one event.
// The target is 20k events/s on a 2-core machine.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, bc := range []struct {
		name, stream string
		values       map[string]any
	}{
		{name: "embedded", stream: "embedded"},
		{name: "embedded_signed", stream: "embedded", values: map[string]any{"signing_secrets": []any{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}},
		{name: "kafka", stream: "kafka"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, dir, topics := benchStream(b, bc.stream)
			evs := benchEvents("ev-", b.N)
			prefill(b, st, dir, topics.For(benchType), evs)
			var got atomic.Int64
			all := make(chan struct{})
			n := int64(b.N)
			srv := benchReceiver(b, func(string) {
				if got.Add(1) == n {
					close(all)
				}
			})
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			r := runSink(b, st, dir, topics, srv.URL+"/orders", bc.values)
			select {
			case <-all:
			case <-time.After(30*time.Second + time.Duration(b.N)*time.Millisecond):
				b.Fatalf("%d of %d events arrived in time; sink status %+v", got.Load(), n, sinkStatus(r))
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if s := sinkStatus(r); s.Retried != 0 || s.DeadLettered != 0 {
				b.Errorf("status %+v: retries or dead letters while the receiver answered 200", s)
			}
		})
	}
}

// BenchmarkSinkLatency2k appends 1 KB events of 64 keys at a steady
// 2,000 events/s, one at a time, to a stream that the runtime is already
// delivering from, and reports the time from each append (taken at the
// publisher, just before the event is handed to the stream) to its
// arrival at the receiver: p50, p99 and max, over the events after a
// one-second warm-up. TRIBUTARY_BENCH_SECONDS sets how long it publishes
// (default 10). One op is one run. The target is a p99 under
// 50 ms on a 2-core machine.
func BenchmarkSinkLatency2k(b *testing.B) {
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("TRIBUTARY_BENCH_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	const rate = 2000
	for _, stream := range []string{"embedded", "kafka"} {
		b.Run(stream, func(b *testing.B) {
			var p50, p99, worst []float64
			for range b.N {
				lat := steadyRun(b, stream, rate, seconds)
				p50 = append(p50, ms(quantile(lat, 0.50)))
				p99 = append(p99, ms(quantile(lat, 0.99)))
				worst = append(worst, ms(lat[len(lat)-1]))
			}
			b.ReportMetric(slices.Max(p50), "p50-ms")
			b.ReportMetric(slices.Max(p99), "p99-ms")
			b.ReportMetric(slices.Max(worst), "max-ms")
		})
	}
}

// steadyRun publishes rate events/s for seconds and returns the sorted
// append-to-receiver latencies of the events after the first second.
func steadyRun(b *testing.B, stream string, rate, seconds int) []time.Duration {
	b.Helper()
	st, dir, topics := benchStream(b, stream)
	n := rate * seconds
	evs := benchEvents("lat-", n)
	sent := make([]atomic.Int64, n) // unix ns of each append
	lat := make([]time.Duration, n)
	var got atomic.Int64
	all := make(chan struct{})
	srv := benchReceiver(b, func(id string) {
		now := time.Now().UnixNano()
		i, err := strconv.Atoi(strings.TrimPrefix(id, "lat-"))
		if err != nil || i < 0 || i >= n {
			return
		}
		if lat[i] == 0 {
			lat[i] = time.Duration(now - sent[i].Load())
		}
		if got.Add(1) == int64(n) {
			close(all)
		}
	})
	r := runSink(b, st, dir, topics, srv.URL+"/orders", nil)
	// Wait until the runtime opened the stream and the sink's group reads
	// the topic: one event published and delivered.
	deadline := time.Now().Add(60 * time.Second)
	for sinkStatus(r).State != runtime.StateRunning {
		if time.Now().After(deadline) {
			b.Fatalf("the sink is not running after 60s: %+v", sinkStatus(r))
		}
		time.Sleep(10 * time.Millisecond)
	}
	publishAll(b, st, topics.For(benchType), benchEvents("warm-", 1))
	for sinkStatus(r).Delivered == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("the sink delivered nothing in 60s: %+v", sinkStatus(r))
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub := st.Publisher().(core.EventPublisher)
	topic := topics.For(benchType)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sent[i].Store(time.Now().UnixNano())
		if err := pub.PublishEvents(context.Background(), topic, evs[i:i+1], func(err error) {
			if err != nil {
				b.Errorf("publish: %v", err)
			}
		}); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d events arrived within 2 minutes of the last append: %+v", got.Load(), n, sinkStatus(r))
	}
	out := slices.Clone(lat[rate:])
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime returns the CPU time the process has used so far: a figure
// that other work on a shared machine distorts less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
