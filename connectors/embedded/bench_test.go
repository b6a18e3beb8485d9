package embedded_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// benchMessages returns n messages with a JSON payload of about 1 KB, its
// values different in every message (as real order events are: the keys
// repeat, the values do not), and the metadata of a typical CloudEvent.
func benchMessages(n int) []*message.Message {
	r := rand.New(rand.NewPCG(7, 11))
	letters := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		return string(b)
	}
	msgs := make([]*message.Message, n)
	for i := range msgs {
		var p strings.Builder
		fmt.Fprintf(&p, `{"order_id":"ord-%016x","customer":{"id":%d,"email":"%s@example.com","tier":%q},"lines":[`,
			r.Uint64(), r.IntN(1_000_000), letters(10), []string{"gold", "silver", "bronze"}[r.IntN(3)])
		for l := 0; p.Len() < 960; l++ {
			if l > 0 {
				p.WriteByte(',')
			}
			fmt.Fprintf(&p, `{"sku":"SKU-%06d","qty":%d,"price":%d.%02d}`, r.IntN(1_000_000), 1+r.IntN(20), r.IntN(500), r.IntN(100))
		}
		fmt.Fprintf(&p, `],"note":%q}`, letters(max(0, 1020-p.Len())))
		m := message.NewMessage(fmt.Sprintf("evt-%08d", i), []byte(p.String()))
		m.Metadata.Set("ce_specversion", "1.0")
		m.Metadata.Set("ce_type", "com.example.order.accepted")
		m.Metadata.Set("ce_source", "tributary/legacy_orders")
		m.Metadata.Set("ce_time", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano))
		m.Metadata.Set(core.MetadataKey, fmt.Sprintf("order-%d", i%1000))
		m.Metadata.Set("content-type", "application/json")
		msgs[i] = m
	}
	return msgs
}

// cpuTime returns the CPU time the process has used so far. The CPU time
// per event is a figure that other work on a shared machine does not
// distort.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds events/s and CPU µs per event to b's results.
func report(b *testing.B, elapsed, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
}

// BenchmarkPublish1KB publishes 1 KB events with fsync before ack (sync:
// full), from many concurrent publishers. One op is one event.
func BenchmarkPublish1KB(b *testing.B) {
	msgs := benchMessages(4096)
	for _, compression := range []string{"s2", "none"} {
		name := "async"
		if compression != "s2" {
			name += "_" + compression
		}
		b.Run(name, func(b *testing.B) { benchPublishAsync(b, msgs, compression) })
	}
	b.Run("sync_256_publishers", func(b *testing.B) {
		s := openStream(b, b.TempDir(), nil)
		pub := s.Publisher()
		b.SetParallelism(128) // 2 cores: 256 goroutines
		b.SetBytes(1024)
		b.ResetTimer()
		start, cpu := time.Now(), cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := pub.Publish("bench", msgs[i%len(msgs)]); err != nil {
					b.Errorf("publish: %v", err)
					return
				}
				i++
			}
		})
		elapsed, cpu := time.Since(start), cpuTime()-cpu
		b.StopTimer()
		report(b, elapsed, cpu)
	})
}

// BenchmarkSubscribe1KB reads 1 KB events already stored, acking each, in
// a consumer group (so every ack commits the group's offset). One op is
// one event.
func BenchmarkSubscribe1KB(b *testing.B) {
	msgs := benchMessages(4096)
	s := openStream(b, b.TempDir(), nil)
	pub := s.Publisher()
	for i := 0; i < b.N; i += 512 {
		n := min(512, b.N-i)
		batch := make([]*message.Message, n)
		for j := range batch {
			batch[j] = msgs[(i+j)%len(msgs)]
		}
		if err := pub.Publish("bench", batch...); err != nil {
			b.Fatal(err)
		}
	}
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "bench", From: core.FromBeginning})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	b.SetBytes(1024)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	ch, err := sub.Subscribe(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		(<-ch).Ack()
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu
	b.StopTimer()
	report(b, elapsed, cpu)
}

// benchPublishAsync publishes msgs in turn with PublishAsync, keeping up to
// 8192 publishes in flight, as the runtime does, into a stream storing
// batches with compression.
func benchPublishAsync(b *testing.B, msgs []*message.Message, compression string) {
	s := openStream(b, b.TempDir(), map[string]any{"compression": compression})
	pub := s.Publisher().(core.AsyncPublisher)
	const inflight = 8192
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	b.SetBytes(1024)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := range b.N {
		sem <- struct{}{}
		wg.Add(1)
		err := pub.PublishAsync(context.Background(), "bench", msgs[i%len(msgs):i%len(msgs)+1], func(err error) {
			if err != nil {
				errMu.Lock()
				firstErr = err
				errMu.Unlock()
			}
			<-sem
			wg.Done()
		})
		if err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu
	b.StopTimer()
	if firstErr != nil {
		b.Fatalf("publish: %v", firstErr)
	}
	report(b, elapsed, cpu)
}
