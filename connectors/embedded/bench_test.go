package embedded_test

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// benchMessages returns n messages with a 1 KB payload and the metadata of
// a typical CloudEvent.
func benchMessages(n int) []*message.Message {
	payload := make([]byte, 1024)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	msgs := make([]*message.Message, n)
	for i := range msgs {
		m := message.NewMessage(fmt.Sprintf("evt-%08d", i), payload)
		m.Metadata.Set("ce_specversion", "1.0")
		m.Metadata.Set("ce_type", "com.example.order.accepted")
		m.Metadata.Set("ce_source", "tributary/legacy_orders")
		m.Metadata.Set("ce_time", "2024-05-01T10:00:00Z")
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
	b.Run("async", func(b *testing.B) {
		s := openStream(b, b.TempDir(), nil)
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
	})
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
