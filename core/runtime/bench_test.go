package runtime_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

// rowSource emits n changes of a 10-field row, in batches of 256.
type rowSource struct {
	n     int
	next  int
	acked atomic.Int64
}

func (s *rowSource) Configure(core.Config) error                         { return nil }
func (s *rowSource) Open(context.Context, core.Env, core.Position) error { return nil }
func (s *rowSource) Close(context.Context) error                         { return nil }
func (s *rowSource) Ack(_ context.Context, p core.Position) error {
	n, _ := strconv.Atoi(string(p.Data))
	s.acked.Store(int64(n))
	return nil
}

func (s *rowSource) Read(ctx context.Context) ([]core.Change, error) {
	if s.next >= s.n {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	end := min(s.next+256, s.n)
	out := make([]core.Change, 0, end-s.next)
	for i := s.next; i < end; i++ {
		out = append(out, core.Change{
			Op: core.OpCreate,
			After: map[string]any{
				"id": int64(i), "customer_id": int64(i % 977), "status": "accepted", "currency": "EUR",
				"total": json.Number("129.90"), "items": int64(3), "channel": "web", "country": "DE",
				"created_at": time.Unix(1700000000, 0).UTC(), "note": "leave at the door",
			},
			Source:   core.SourceInfo{System: "bench", Table: "orders"},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i + 1))},
		})
	}
	s.next = end
	return out, nil
}

// BenchmarkRuntimeThroughput measures changes per second through the
// runtime: rules, catalog validation, the publish path and in-order
// checkpoints, into the in-memory stream; untraced, and traced with every
// span sampled (the SDK with no exporter: the spans' cost, not an
// exporter's).
func BenchmarkRuntimeThroughput(b *testing.B) {
	b.Run("untraced", func(b *testing.B) { benchmarkRuntime(b, nil) })
	b.Run("traced", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		defer tp.Shutdown(context.Background())
		benchmarkRuntime(b, tp)
	})
}

func benchmarkRuntime(b *testing.B, tp trace.TracerProvider) {
	cat, err := catalog.New([]core.EventType{{
		Type: "com.acme.order.accepted", Version: "1",
		Schema: map[string]any{
			"type":     "object",
			"required": []any{"order_id", "total"},
			"properties": map[string]any{
				"order_id": map[string]any{"type": "integer"}, "total": map[string]any{"type": "number"},
			},
		},
	}}, "")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile("orders", []core.Rule{{
		Name: "accepted", When: `op == "create"`, Type: "com.acme.order.accepted",
		Subject: `string(after.id)`, PartitionKey: `string(after.customer_id)`,
		Data: map[string]any{
			"order_id": "after.id", "customer_id": "after.customer_id", "status": "after.status",
			"currency": "after.currency", "total": "after.total", "items": "after.items",
			"channel": "after.channel", "country": "after.country", "created_at": "after.created_at", "note": "after.note",
		},
	}}, cat)
	if err != nil {
		b.Fatal(err)
	}
	src := &rowSource{n: b.N}
	rt, err := runtime.New(runtime.Options{
		Stream:         discardStream{memstream.New()},
		Connectors:     []runtime.Connector{{Name: "orders", Source: src, Mapper: runtime.Rules(set)}},
		StateDir:       b.TempDir(),
		TracerProvider: tp,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- rt.Run(ctx) }()
	for src.acked.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// discardStream acknowledges every publish at once and keeps nothing, so
// that the benchmark measures the runtime rather than a stream.
type discardStream struct{ *memstream.Stream }

func (d discardStream) Publisher() message.Publisher { return discardPublisher{} }

type discardPublisher struct{}

func (discardPublisher) Publish(string, ...*message.Message) error { return nil }
func (discardPublisher) Close() error                              { return nil }
func (discardPublisher) PublishAsync(_ context.Context, _ string, _ []*message.Message, done func(error)) error {
	done(nil)
	return nil
}
