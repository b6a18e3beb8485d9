package http_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/sinkbench"
)

// The benchmarks of this file run the http sink as the sidecar does:
// through the sink runtime, reading a real stream (the embedded one, or
// Kafka on the test broker) through its consumer group, delivering 1 KB
// events of 64 keys to a local receiver that reads each body and answers
// 200 at once. The sink and the runtime keep their defaults (16 Writes of
// at most 64 deliveries at once, 16 requests in flight, structured
// CloudEvents), as a configuration that sets only a url gets.

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
	return sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "bench", Type: sink.Type, Sink: s, From: core.FromBeginning})
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
			st, dir, topics := sinkbench.Stream(b, bc.stream)
			evs := sinkbench.Events("ev-", b.N)
			sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
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
			start, cpu := time.Now(), sinkbench.CPUTime()
			r := runSink(b, st, dir, topics, srv.URL+"/orders", bc.values)
			select {
			case <-all:
			case <-time.After(30*time.Second + time.Duration(b.N)*time.Millisecond):
				b.Fatalf("%d of %d events arrived in time; sink status %+v", got.Load(), n, sinkbench.Status(r, "bench"))
			}
			elapsed, cpu := time.Since(start), sinkbench.CPUTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			if s := sinkbench.Status(r, "bench"); s.Retried != 0 || s.DeadLettered != 0 {
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
	st, dir, topics := sinkbench.Stream(b, stream)
	n := rate * seconds
	evs := sinkbench.Events("lat-", n)
	index := make(map[string]int, n)
	for i, ev := range evs {
		index[ev.ID] = i
	}
	sent := make([]atomic.Int64, n) // unix ns of each append
	lat := make([]time.Duration, n)
	var got atomic.Int64
	all := make(chan struct{})
	srv := benchReceiver(b, func(id string) {
		now := time.Now().UnixNano()
		i, ok := index[id]
		if !ok {
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
	for sinkbench.Status(r, "bench").State != runtime.StateRunning {
		if time.Now().After(deadline) {
			b.Fatalf("the sink is not running after 60s: %+v", sinkbench.Status(r, "bench"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	sinkbench.Publish(b, st, topics.For(sinkbench.Type), sinkbench.Events("warm-", 1))
	for sinkbench.Status(r, "bench").Delivered == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("the sink delivered nothing in 60s: %+v", sinkbench.Status(r, "bench"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	pub := st.Publisher().(core.EventPublisher)
	topic := topics.For(sinkbench.Type)
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
		b.Fatalf("%d of %d events arrived within 2 minutes of the last append: %+v", got.Load(), n, sinkbench.Status(r, "bench"))
	}
	out := slices.Clone(lat[rate:])
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
