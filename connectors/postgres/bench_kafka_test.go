package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// ackClock wraps a source and records, for every change, the time from its
// commit (Source.CommitTime) to the Ack that covers it: the runtime acks
// once the change's events are durable on the stream and its checkpoint
// is stored.
type ackClock struct {
	core.Source
	mu      sync.Mutex
	pending []time.Time
	pos     [][]byte
	lat     []time.Duration
}

func (a *ackClock) Read(ctx context.Context) ([]core.Change, error) {
	b, err := a.Source.Read(ctx)
	a.mu.Lock()
	for _, ch := range b {
		a.pending = append(a.pending, ch.Source.CommitTime)
		a.pos = append(a.pos, ch.Position.Data)
	}
	a.mu.Unlock()
	return b, err
}

func (a *ackClock) Ack(ctx context.Context, pos core.Position) error {
	now := time.Now()
	a.mu.Lock()
	for i, p := range a.pos {
		if string(p) == string(pos.Data) {
			for _, c := range a.pending[:i+1] {
				a.lat = append(a.lat, now.Sub(c))
			}
			a.pending, a.pos = a.pending[i+1:], a.pos[i+1:]
			break
		}
	}
	a.mu.Unlock()
	return a.Source.Ack(ctx, pos)
}

func (a *ackClock) latencies() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.lat)
}

// kafkaRuntime returns a runtime streaming src into Kafka under a fresh
// connector name, so that no earlier checkpoint is found.
func kafkaRuntime(b *testing.B, src core.Source) *runtime.Runtime {
	brokers := servicetest.Kafka(b)
	bs := make([]any, len(brokers))
	for i, x := range brokers {
		bs[i] = x
	}
	st := kafka.New()
	if err := st.Configure(core.NewConfig("stream", map[string]any{"brokers": bs, "linger": "2ms"})); err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("pgbench_%d", time.Now().UnixNano())
	mapper := runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		data, _ := json.Marshal(ch.After)
		return []runtime.Output{{Rule: "r", Event: &core.Event{
			ID: core.EventID(name, ch.Position, "r"), Source: "/bench", SpecVersion: core.SpecVersion,
			Type: "com.example.order.placed", DataContentType: "application/json", Data: data,
			PartitionKey: sprintf("%v", ch.Key["id"]),
		}}}
	})
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: "tributary.bench.postgres"},
		Connectors:      []runtime.Connector{{Name: name, Type: "postgres_cdc", Source: src, Mapper: mapper}},
		StateDir:        b.TempDir(),
		ShutdownTimeout: 30 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// BenchmarkStreamKafka streams TRIBUTARY_BENCH_ROWS single-row inserts in
// 1k-row transactions, committed while the sidecar is down, through the
// runtime into Kafka, until every change's events are durable and their
// checkpoint stored.
func BenchmarkStreamKafka(b *testing.B) {
	servicetest.Kafka(b)
	d, tb := benchTable(b)
	n := benchRows(b)
	cfg := neverSnapshot(d.config("bench"))
	closeSource(b, openSource(b, cfg, core.Position{})) // publication and slot
	next := 1
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		loadRows(b, d, tb, next, n)
		next += n
		rt := kafkaRuntime(b, newSource(b, cfg))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		start := time.Now()
		go func() { done <- rt.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for {
			s := rt.Status().Connectors[0]
			if s.EventsEmitted >= uint64(n) && s.InFlight == 0 {
				break
			}
			if time.Now().After(deadline) || s.State == runtime.StateFailed {
				b.Fatalf("stuck: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
}

// BenchmarkSteady5k commits 5,000 single-row inserts a second (50-row
// transactions every 10 ms) for TRIBUTARY_BENCH_SECONDS (default 10) while
// the runtime streams them into Kafka, and reports the commit-to-ack
// latency percentiles: from the transaction's commit time to the Ack that
// follows the events' durability and the checkpoint's storage.
func BenchmarkSteady5k(b *testing.B) {
	servicetest.Kafka(b)
	d, tb := benchTable(b)
	secs := 10
	if v := os.Getenv("TRIBUTARY_BENCH_SECONDS"); v != "" {
		var err error
		if secs, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TRIBUTARY_BENCH_SECONDS: %v", err)
		}
	}
	cfg := neverSnapshot(d.config("bench"))
	closeSource(b, openSource(b, cfg, core.Position{}))
	next := 1
	var all []time.Duration
	var rate float64
	for b.Loop() {
		clock := &ackClock{Source: newSource(b, cfg)}
		rt := kafkaRuntime(b, clock)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		for rt.Status().Connectors[0].State != runtime.StateRunning {
			time.Sleep(10 * time.Millisecond)
		}
		tick := time.NewTicker(10 * time.Millisecond)
		start := time.Now()
		rows := 0
		for time.Since(start) < time.Duration(secs)*time.Second {
			<-tick.C
			// Catch up on ticks a slow commit missed, 50 rows per transaction.
			for due := int(time.Since(start).Seconds() * 5000); rows+50 <= due; rows += 50 {
				d.exec(b, sprintf(`insert into %s select g, 'order ' || g, g * 1.25, now() from generate_series(%d, %d) g`, tb, next, next+49))
				next += 50
			}
		}
		tick.Stop()
		rate = float64(rows) / time.Since(start).Seconds()
		deadline := time.Now().Add(time.Minute)
		for len(clock.latencies()) < rows && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		all = append(all, clock.latencies()...)
	}
	if len(all) == 0 {
		b.Fatal("no change acknowledged")
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
