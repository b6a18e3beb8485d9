package runtime

import (
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// This file maps a session's batches of changes into groups: one publish
// call per topic and per maxGroup messages, in read order.

// maxGroup bounds the messages handed to the stream in one publish call.
const maxGroup = 1024

// pendingChange counts the messages a change still waits for.
type pendingChange struct {
	seq        uint64
	left       atomic.Int32
	commitTime time.Time
	// tr is the change's spans, when tracing.
	tr *changeTrace
}

// group is one publish call: messages for one topic, from one or more
// consecutive changes, in read order.
type group struct {
	topic      string
	deadLetter bool
	msgs       []*message.Message
	// events holds the group's events instead of msgs when the stream
	// takes events as they are.
	events  []*core.Event
	changes []*pendingChange // the change of each message
	labels  []string         // event type, or dead-letter reason, of each message
	// outs is where each message came from, to dead-letter an event the
	// stream refuses.
	outs []outRef

	// seq orders groups in read order; sub orders the single-event
	// groups a refused group is split into.
	seq, sub uint64
	// attempts counts failed publishes of the group.
	attempts int
	// isolate groups are published alone, with nothing else in flight:
	// they are the events of a refused group, tried one by one to find
	// the refused ones.
	isolate bool
	start   time.Time
}

// outRef is the change, rule and event a message was built from.
type outRef struct {
	ch    *core.Change
	rule  string
	event *core.Event
}

// size is how many messages the group holds.
func (g *group) size() int { return len(g.msgs) + len(g.events) }

// handleBatch maps a batch of changes and hands their events to the stream,
// one publish call per topic (and per maxGroup messages) rather than per
// change, so that the stream sees large batches. Each change completes when
// its last message is durable.
func (s *session) handleBatch(batch []core.Change, rt readTiming) {
	pcs := make([]pendingChange, len(batch))
	var order []*group
	open := map[string]*group{}
	flush := func(g *group) {
		delete(open, groupKey(g.topic, g.deadLetter))
		s.publishGroup(g)
	}
	get := func(topic string, dl bool) *group {
		k := groupKey(topic, dl)
		g := open[k]
		if g == nil {
			g = &group{topic: topic, deadLetter: dl}
			open[k] = g
			order = append(order, g)
		}
		return g
	}
	// Changes of a batch mostly share one event type, hence one topic.
	var lastType, topic string
	first := s.tracker.AddChanges(batch)
	s.added.Store(first + uint64(len(batch)))
	var traces []changeTrace
	if s.c.r.tracer != nil {
		traces = s.startTraces(batch, first, rt)
		s.traceMu.Lock()
		if s.open == nil {
			s.open = map[*changeTrace]struct{}{}
		}
		for i := range traces {
			pcs[i].tr = &traces[i]
			s.open[&traces[i]] = struct{}{}
		}
		s.traceMu.Unlock()
	}
	outs := s.mapBatch(batch, traces)
	var none []uint64 // changes that yield nothing, complete at once
	for i := range batch {
		ch := &batch[i]
		pc := &pcs[i]
		pc.seq = first + uint64(i)
		pc.commitTime = ch.Source.CommitTime
		n := 0
		for _, o := range outs[i] {
			if o.Err == nil && o.Event != nil {
				if o.Event.Type != lastType || topic == "" {
					lastType, topic = o.Event.Type, s.c.r.opts.Topics.For(o.Event.Type)
				}
				g := get(topic, false)
				if s.evPub != nil {
					g.events = append(g.events, o.Event)
				} else {
					g.msgs = append(g.msgs, o.Event.ToMessage())
				}
				g.changes = append(g.changes, pc)
				g.labels = append(g.labels, o.Event.Type)
				g.outs = append(g.outs, outRef{ch: ch, rule: o.Rule, event: o.Event})
				n++
				continue
			}
			msg, err := deadLetterMessage(s.c.cfg.Name, ch, o)
			if err != nil {
				s.fail(core.Fatal(fmt.Errorf("build dead-letter record for rule %q: %w", o.Rule, err)))
				return
			}
			reason := o.Reason
			if reason == "" {
				reason = ReasonRuleError
			}
			g := get(s.c.r.opts.DeadLetterTopic, true)
			g.msgs = append(g.msgs, msg)
			g.changes = append(g.changes, pc)
			g.labels = append(g.labels, reason)
			g.outs = append(g.outs, outRef{ch: ch, rule: o.Rule})
			n++
		}
		pc.left.Store(int32(n))
		if n == 0 {
			none = append(none, pc.seq)
		}
		// Flush full groups between changes, never in the middle of one,
		// so that a change's count is set before any of its acks arrive.
		for _, g := range order {
			if g.size() >= maxGroup && open[groupKey(g.topic, g.deadLetter)] == g {
				flush(g)
			}
		}
	}
	for _, g := range order {
		if open[groupKey(g.topic, g.deadLetter)] == g {
			flush(g)
		}
	}
	if len(none) > 0 {
		if traces != nil {
			for _, seq := range none {
				s.tracedDelivered(&traces[seq-first])
			}
		}
		s.complete(none)
	}
}

// parallelMapMin is the smallest batch mapped on more than one goroutine.
const parallelMapMin = 256

// mapBatch maps every change of batch, in order. A mapper safe for
// concurrent use maps a large batch in parts, one per processor, while
// the source reads the next batch on another goroutine.
func (s *session) mapBatch(batch []core.Change, traces []changeTrace) [][]Output {
	outs := make([][]Output, len(batch))
	m := s.c.cfg.Mapper
	if traces != nil {
		// Traced, a batch is mapped in order on this goroutine: each
		// change's spans are started and ended around its own mapping.
		for i := range batch {
			outs[i] = s.mapTraced(&traces[i], &batch[i])
		}
		return outs
	}
	parts := min(goruntime.GOMAXPROCS(0), len(batch)/(parallelMapMin/2))
	if _, ok := m.(concurrentMapper); !ok || parts < 2 {
		for i := range batch {
			outs[i] = m.Map(&batch[i])
		}
		return outs
	}
	var wg sync.WaitGroup
	size := (len(batch) + parts - 1) / parts
	for lo := size; lo < len(batch); lo += size {
		hi := min(lo+size, len(batch))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				outs[i] = m.Map(&batch[i])
			}
		})
	}
	for i := range size {
		outs[i] = m.Map(&batch[i])
	}
	wg.Wait()
	return outs
}

func groupKey(topic string, dl bool) string {
	if dl {
		return "\x00dl\x00" + topic
	}
	return topic
}
