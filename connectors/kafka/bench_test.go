package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
)

// benchEvents returns n CloudEvents of about size bytes of JSON data each,
// over 1000 partition keys.
func benchEvents(n, size int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		head := fmt.Sprintf(`{"order_id":"ord-%07d","customer":"cust-%05d","status":"accepted","lines":[`, i, i%997)
		var b strings.Builder
		b.WriteString(head)
		for j := 0; b.Len() < size-40; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"price":%d.%02d}`, (i*7+j)%100000, j%9+1, (i+j)%500, j%100)
		}
		b.WriteString(`],"currency":"EUR"}`)
		e := core.Event{
			ID:              core.EventID("bench", core.Position{Version: 1, Data: fmt.Appendf(nil, "%d", i)}, "r"),
			Source:          "tributary/bench",
			SpecVersion:     core.SpecVersion,
			Type:            "com.example.order.accepted.v1",
			Subject:         fmt.Sprintf("ord-%07d", i),
			Time:            time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			DataContentType: "application/json",
			Data:            []byte(b.String()),
			PartitionKey:    fmt.Sprintf("ord-%04d", i%1000),
		}
		msgs[i] = e.ToMessage()
	}
	return msgs
}

// BenchmarkPublish1KB publishes 1 KB events through PublishAsync (batches
// of 500 per call, several calls in flight, as the runtime does) with
// acks from all in-sync replicas, and reports events/s and the client's CPU
// time (user and system) per event.
func BenchmarkPublish1KB(b *testing.B) {
	cases := []struct {
		name   string
		values map[string]any
		secure bool // through the SASL_SSL listener: TLS and SCRAM-SHA-512
	}{
		{name: "default"}, // no linger, no compression
		{name: "lz4", values: map[string]any{"compression": "lz4"}},
		{name: "zstd", values: map[string]any{"compression": "zstd"}},
		{name: "linger=5ms", values: map[string]any{"linger": "5ms"}},
		{name: "linger=5ms,lz4", values: map[string]any{"linger": "5ms", "compression": "lz4"}},
		{name: "linger=20ms,1MB", values: map[string]any{"linger": "20ms", "batch_max_bytes": 1 << 20}},
		{name: "tls+scram-sha-512", secure: true},
	}
	const perCall = 500
	events := benchEvents(20*perCall, 1024)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if tc.secure {
				addr, user, password, ca := saslBroker(b)
				tc.values = map[string]any{
					"brokers": []any{addr},
					"tls":     map[string]any{"enabled": true, "ca_file": ca},
					"sasl":    map[string]any{"mechanism": "SCRAM-SHA-512", "username": user, "password": password},
				}
			}
			s := openStream(b, tc.values)
			pub := s.Publisher().(*kafka.Publisher)
			topic := newTopic("bench")
			ctx := context.Background()
			warm := make(chan error, 1)
			if err := pub.PublishAsync(ctx, topic, events[:perCall], func(err error) { warm <- err }); err != nil {
				b.Fatal(err)
			}
			if err := <-warm; err != nil {
				b.Fatal(err)
			}
			var (
				wg       sync.WaitGroup
				errMu    sync.Mutex
				firstErr error
			)
			b.SetBytes(1024)
			b.ResetTimer()
			cpu0 := processCPU(b)
			start := time.Now()
			for sent := 0; sent < b.N; sent += perCall {
				n := min(perCall, b.N-sent)
				off := sent % len(events)
				if off+n > len(events) {
					off = 0
				}
				wg.Add(1)
				err := pub.PublishAsync(ctx, topic, events[off:off+n], func(err error) {
					if err != nil {
						errMu.Lock()
						firstErr = err
						errMu.Unlock()
					}
					wg.Done()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			wg.Wait()
			elapsed := time.Since(start)
			cpu := processCPU(b) - cpu0
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// processCPU returns the user and system CPU time this process has used so
// far: the client's cost per event, apart from the broker's on the same
// machine, which wall-clock throughput mixes in.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish1KBOneByOne publishes the same events with a blocking
// Publish of one message at a time (what watermill-kafka's publisher does),
// for comparison with BenchmarkPublish1KB: this path is bound by latency.
func BenchmarkPublish1KBOneByOne(b *testing.B) {
	events := benchEvents(1000, 1024)
	for _, linger := range []string{"0", "5ms"} {
		b.Run("linger="+linger, func(b *testing.B) {
			s := openStream(b, map[string]any{"linger": linger})
			pub := s.Publisher()
			topic := newTopic("bench-sync")
			if err := pub.Publish(topic, events[0]); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(1024)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := pub.Publish(topic, events[i%len(events)]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
