package runtime_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// sessionSource emits n changes in batches of size, each with its own
// position, as a webhook source hands over the deliveries that arrived
// since its last Read.
type sessionSource struct {
	n, size int
	next    int
	acked   atomic.Int64
	changes []core.Change
}

func (s *sessionSource) Configure(core.Config) error                         { return nil }
func (s *sessionSource) Open(context.Context, core.Env, core.Position) error { return nil }
func (s *sessionSource) Close(context.Context) error                         { return nil }
func (s *sessionSource) Ack(_ context.Context, p core.Position) error {
	n, _ := strconv.Atoi(string(p.Data))
	s.acked.Store(int64(n))
	return nil
}

func (s *sessionSource) Read(ctx context.Context) ([]core.Change, error) {
	if s.next >= s.n {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	end := min(s.next+s.size, s.n)
	out := make([]core.Change, 0, end-s.next)
	for i := s.next; i < end; i++ {
		ch := s.changes[i%len(s.changes)]
		ch.Position = core.Position{Version: 1, Data: []byte(strconv.Itoa(i + 1))}
		out = append(out, ch)
	}
	s.next = end
	return out, nil
}

// BenchmarkSession measures the runtime's own work per change (reading,
// grouping, the publish call and its answer, completing changes in order,
// checkpoints) with a mapper that returns a ready event and a stream that
// takes events as they are (as the embedded one does) and acknowledges at
// once: what is left is the session's cost. Batches of 1, 16 and 256
// changes.
func BenchmarkSession(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run("batch_"+strconv.Itoa(size), func(b *testing.B) { benchmarkSession(b, size) })
	}
}

func benchmarkSession(b *testing.B, size int) {
	ev := &core.Event{
		ID: "evt-1", Source: "tributary/bench", SpecVersion: "1.0", Type: "com.acme.order.accepted",
		Subject: "A-1", Time: time.Unix(1700000000, 0).UTC(), PartitionKey: "A-1",
		DataContentType: "application/json", Data: []byte(`{"order_id":"A-1","total":129.9}`),
	}
	outs := []runtime.Output{{Rule: "accepted", Event: ev}}
	src := &sessionSource{n: b.N, size: size, changes: []core.Change{{
		Op: core.OpCreate, Key: map[string]any{"id": "A-1"},
		Source: core.SourceInfo{System: "bench", Table: "orders"},
	}}}
	rt, err := runtime.New(runtime.Options{
		Stream: eventDiscardStream{memstream.New()},
		Connectors: []runtime.Connector{{Name: "orders", Source: src,
			Mapper: runtime.MapperFunc(func(*core.Change) []runtime.Output { return outs })}},
		StateDir: b.TempDir(),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	go func() { done <- rt.Run(ctx) }()
	for src.acked.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
	b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/change")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// processCPU returns the CPU time the process has used so far: a figure
// that other work on a shared machine distorts less than elapsed time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// eventDiscardStream acknowledges every publish at once and keeps
// nothing; its publisher takes events as they are.
type eventDiscardStream struct{ *memstream.Stream }

func (d eventDiscardStream) Publisher() message.Publisher { return eventDiscardPublisher{} }

type eventDiscardPublisher struct{ discardPublisher }

func (eventDiscardPublisher) PublishEvents(_ context.Context, _ string, _ []*core.Event, done func(error)) error {
	done(nil)
	return nil
}

var _ core.EventPublisher = eventDiscardPublisher{}
