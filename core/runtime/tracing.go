package runtime

import (
	"context"
	"errors"
	"net/textproto"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// This file traces changes (Options.TracerProvider): one span per change,
// "tributary.change", with a child span per stage: read (the Read call
// that returned it), map (the rules), validate (the catalog check, which
// the rules engine runs as it builds each event, so its span lies within
// map's), publish (from handing its events to the stream until the stream
// stored them all; a producer span, whose context every event carries as
// its traceparent (and tracestate) so that a consumer continues the trace) and ack (until
// the checkpoint covering it is stored and the source acknowledged). A
// change that carries a W3C trace context in its HTTP headers (a webhook
// delivery, whose request the sidecar's listener traced) is a child of
// it. With no tracer provider nothing of this runs.

// tracerName is the instrumentation scope of the runtime's spans.
const tracerName = "github.com/tributary/tributary/core/runtime"

// Span names.
const (
	SpanChange   = "tributary.change"
	SpanRead     = "tributary.read"
	SpanMap      = "tributary.map"
	SpanValidate = "tributary.validate"
	SpanPublish  = "tributary.publish"
	SpanAck      = "tributary.ack"
)

// changeTrace is one traced change's spans.
type changeTrace struct {
	ctx     context.Context // holds the change's span
	span    trace.Span
	publish trace.Span
	ack     trace.Span
	seq     uint64
}

// readTiming is when the Read call that returned a batch started and
// ended, when tracing.
type readTiming struct{ start, end time.Time }

var traceContext = propagation.TraceContext{}

// headerCarrier reads a change's HTTP headers (Meta["headers"], keyed by
// canonical header name) as a propagation carrier.
type headerCarrier map[string]any

func (h headerCarrier) Get(key string) string {
	v, _ := h[textproto.CanonicalMIMEHeaderKey(key)].(string)
	return v
}
func (h headerCarrier) Set(string, string) {}
func (h headerCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startTraces starts the change and read spans of batch.
func (s *session) startTraces(batch []core.Change, first uint64, rt readTiming) []changeTrace {
	tr := s.c.r.tracer
	out := make([]changeTrace, len(batch))
	for i := range batch {
		ch := &batch[i]
		parent := context.Background()
		if h, ok := ch.Meta["headers"].(map[string]any); ok {
			parent = traceContext.Extract(parent, headerCarrier(h))
		}
		ctx, span := tr.Start(parent, SpanChange, trace.WithTimestamp(rt.start), trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("tributary.connector", s.c.cfg.Name),
				attribute.String("tributary.op", string(ch.Op)),
				attribute.String("tributary.position", ch.Position.String()),
			))
		_, read := tr.Start(ctx, SpanRead, trace.WithTimestamp(rt.start))
		read.SetAttributes(attribute.Int("tributary.batch_size", len(batch)))
		read.End(trace.WithTimestamp(rt.end))
		out[i] = changeTrace{ctx: ctx, span: span, seq: first + uint64(i)}
	}
	return out
}

// mapTraced maps ch within a map span, with a validate span for each
// output the catalog checked, and starts the publish span of a change
// that yields anything, whose context its events carry as traceparent.
func (s *session) mapTraced(ct *changeTrace, ch *core.Change) []Output {
	tr := s.c.r.tracer
	mctx, span := tr.Start(ct.ctx, SpanMap)
	start := time.Now()
	outs := s.c.cfg.Mapper.Map(ch)
	end := time.Now()
	for _, o := range outs {
		if o.Err == nil && o.Event == nil {
			continue
		}
		_, v := tr.Start(mctx, SpanValidate, trace.WithTimestamp(start), trace.WithAttributes(attribute.String("tributary.rule", o.Rule)))
		var ve *catalog.ValidationError
		switch {
		case errors.As(o.Err, &ve):
			v.SetStatus(codes.Error, o.Err.Error())
		case o.Err != nil:
			v.SetAttributes(attribute.String("tributary.validate", "skipped: the rule failed"))
		default:
			v.SetAttributes(attribute.String("tributary.event_type", o.Event.Type))
		}
		v.End(trace.WithTimestamp(end))
	}
	span.SetAttributes(attribute.Int("tributary.outputs", len(outs)))
	for _, o := range outs {
		if o.Err != nil {
			span.SetStatus(codes.Error, o.Reason+": "+o.Err.Error())
			break
		}
	}
	span.End(trace.WithTimestamp(end))
	if len(outs) == 0 {
		return outs
	}
	pctx, pub := tr.Start(ct.ctx, SpanPublish, trace.WithSpanKind(trace.SpanKindProducer))
	ct.publish = pub
	carrier := propagation.MapCarrier{}
	traceContext.Inject(pctx, carrier)
	tp, ts := carrier["traceparent"], carrier["tracestate"]
	for _, o := range outs {
		if o.Event != nil {
			o.Event.TraceParent, o.Event.TraceState = tp, ts
		}
	}
	return outs
}

// tracedDelivered ends ct's publish span and starts its ack span: every
// event of the change is stored.
func (s *session) tracedDelivered(ct *changeTrace) {
	s.traceMu.Lock()
	delete(s.open, ct)
	s.traceMu.Unlock()
	if ct.publish != nil {
		ct.publish.End()
	}
	_, ct.ack = s.c.r.tracer.Start(ct.ctx, SpanAck)
	s.acks.mu.Lock()
	s.acks.waiting = append(s.acks.waiting, ct)
	s.acks.mu.Unlock()
}

// ackTraces holds the traced changes whose events are stored and whose
// checkpoint is not yet.
type ackTraces struct {
	mu      sync.Mutex
	waiting []*changeTrace
	// covered is how many changes lie below the watermark stored as
	// s.mark (a lower bound).
	covered uint64
}

// endAcks ends the spans of the traced changes below covered, whose
// checkpoint is stored and acknowledged.
func (s *session) endAcks(covered uint64) {
	s.acks.mu.Lock()
	keep := s.acks.waiting[:0]
	var done []*changeTrace
	for _, ct := range s.acks.waiting {
		if ct.seq < covered {
			done = append(done, ct)
		} else {
			keep = append(keep, ct)
		}
	}
	clear(s.acks.waiting[len(keep):])
	s.acks.waiting = keep
	s.acks.mu.Unlock()
	for _, ct := range done {
		ct.ack.End()
		ct.span.End()
	}
}

// abandonTraces ends the spans of the changes the session read and did
// not commit: they are read again after the next Open.
func (s *session) abandonTraces() {
	s.acks.mu.Lock()
	waiting := s.acks.waiting
	s.acks.waiting = nil
	s.acks.mu.Unlock()
	for _, ct := range waiting {
		ct.ack.SetStatus(codes.Error, "the session ended before the checkpoint covered the change; it is read again")
		ct.ack.End()
		ct.span.End()
	}
	s.traceMu.Lock()
	open := s.open
	s.open = nil
	s.traceMu.Unlock()
	for ct := range open {
		if ct.publish != nil {
			ct.publish.SetStatus(codes.Error, "the session ended before the stream stored the change's events; it is read again")
			ct.publish.End()
		}
		ct.span.End()
	}
}
