package runtime_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// batchSource returns its changes in one Read, then blocks; it records
// the last ack.
type batchSource struct {
	changes []core.Change
	mu      sync.Mutex
	read    bool
	acked   string
}

func (s *batchSource) Configure(core.Config) error                         { return nil }
func (s *batchSource) Open(context.Context, core.Env, core.Position) error { return nil }
func (s *batchSource) Close(context.Context) error                         { return nil }
func (s *batchSource) Ack(_ context.Context, p core.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked = string(p.Data)
	return nil
}
func (s *batchSource) lastAck() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.acked
}

func (s *batchSource) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	done := s.read
	s.read = true
	s.mu.Unlock()
	if done {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.changes, nil
}

// TestTracingSpansPerChange runs three changes through a traced runtime,
// the first carrying a W3C trace context in its HTTP headers (as a
// webhook delivery does) and the third failing its rule: each change has
// a span with read, map, validate, publish and ack children; the first's
// is a child of the remote span; every event carries its change's
// publish span as traceparent, and the first's events the request's
// tracestate; the dead-lettered change's map span is an
// error.
func TestTracingSpansPerChange(t *testing.T) {
	const remoteTrace, remoteSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	const remoteState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	var changes []core.Change
	for i := 1; i <= 3; i++ {
		ch := core.Change{
			Op: core.OpCreate, Key: map[string]any{"id": i}, After: map[string]any{"id": i},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i))},
		}
		if i == 1 {
			ch.Meta = map[string]any{"headers": map[string]any{
				"Traceparent": fmt.Sprintf("00-%s-%s-01", remoteTrace, remoteSpan), "Tracestate": remoteState,
			}}
		}
		changes = append(changes, ch)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	st := memstream.New()
	src := &batchSource{changes: changes}
	_, stop := runWith(t, runtime.Options{
		Stream:         st,
		TracerProvider: tp,
		Connectors:     []runtime.Connector{{Name: "orders", Source: src, Mapper: mapper("orders", 3)}},
	})
	waitFor(t, "ack 3", func() bool { return src.lastAck() == "3" })
	waitFor(t, "3 change spans ended", func() bool {
		n := 0
		for _, s := range rec.Ended() {
			if s.Name() == runtime.SpanChange {
				n++
			}
		}
		return n == 3
	})
	stop()

	spans := rec.Ended()
	byParent := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == runtime.SpanChange {
			roots = append(roots, s)
		} else {
			byParent[s.Parent().SpanID()] = append(byParent[s.Parent().SpanID()], s)
		}
	}
	publishOf := map[string]trace.SpanContext{}
	for _, root := range roots {
		var pos string
		for _, a := range root.Attributes() {
			if a.Key == "tributary.position" {
				pos = a.Value.AsString()
			}
		}
		if pos == "v1:1" {
			if root.Parent().TraceID().String() != remoteTrace || root.Parent().SpanID().String() != remoteSpan || !root.Parent().IsRemote() {
				t.Errorf("change 1's span has parent %v, want the remote span %s of trace %s", root.Parent(), remoteSpan, remoteTrace)
			}
		} else if root.Parent().IsValid() {
			t.Errorf("change %s's span has parent %v, want none", pos, root.Parent())
		}
		names := map[string]sdktrace.ReadOnlySpan{}
		for _, c := range byParent[root.SpanContext().SpanID()] {
			names[c.Name()] = c
		}
		for _, want := range []string{runtime.SpanRead, runtime.SpanMap, runtime.SpanPublish, runtime.SpanAck} {
			if _, ok := names[want]; !ok {
				t.Errorf("change %s: no %s span under its change span (children: %v)", pos, want, keys(names))
			}
		}
		m, ok := names[runtime.SpanMap]
		if !ok {
			continue
		}
		if v := byParent[m.SpanContext().SpanID()]; len(v) != 1 || v[0].Name() != runtime.SpanValidate {
			t.Errorf("change %s: map's children %v, want one %s", pos, v, runtime.SpanValidate)
		}
		if pos == "v1:3" && m.Status().Code.String() != "Error" {
			t.Errorf("change 3 failed its rule, but its map span's status is %v", m.Status())
		}
		if p, ok := names[runtime.SpanPublish]; ok {
			publishOf[pos] = p.SpanContext()
			if p.SpanKind() != trace.SpanKindProducer {
				t.Errorf("change %s: publish span of kind %v, want producer", pos, p.SpanKind())
			}
		}
		if a, ok := names[runtime.SpanAck]; ok && a.EndTime().After(root.EndTime()) {
			t.Errorf("change %s: ack ends after its change", pos)
		}
	}
	msgs := st.Messages("test.created")
	if len(msgs) != 2 {
		t.Fatalf("%d events, want 2", len(msgs))
	}
	for i, m := range msgs {
		ev, err := core.EventFromMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		sc := publishOf[fmt.Sprintf("v1:%d", i+1)]
		want := fmt.Sprintf("00-%s-%s-01", sc.TraceID(), sc.SpanID())
		if ev.TraceParent != want {
			t.Errorf("event %d: traceparent %q, want its publish span's %q", i+1, ev.TraceParent, want)
		}
		// The webhook request's tracestate goes on with its trace; the
		// second change had none.
		if wantState := map[int]string{0: remoteState}[i]; ev.TraceState != wantState {
			t.Errorf("event %d: tracestate %q, want %q", i+1, ev.TraceState, wantState)
		}
	}
	if sc := publishOf["v1:1"]; sc.TraceID().String() != remoteTrace {
		t.Errorf("change 1's events are in trace %s, want the webhook request's %s", sc.TraceID(), remoteTrace)
	}
}

// TestNoTracingLeavesEventsAlone: without a tracer provider, events carry
// no traceparent.
func TestNoTracingLeavesEventsAlone(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 3}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	waitFor(t, "ack 3", func() bool { return src.lastAck() == 3 })
	stop()
	for _, m := range st.Messages("test.created") {
		if tp := m.Metadata.Get("ce_traceparent"); tp != "" {
			t.Errorf("untraced event with traceparent %q", tp)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
