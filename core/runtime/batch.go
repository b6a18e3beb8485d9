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

	// The storage of a group of one message, the usual one under a
	// light load (a webhook delivery at a time): its slices start in
	// it, so that it takes one allocation rather than five.
	oneEvent  [1]*core.Event
	oneMsg    [1]*message.Message
	oneChange [1]*pendingChange
	oneLabel  [1]string
	oneOut    [1]outRef
}

// newGroup returns an empty group of topic with room for want messages.
func newGroup(topic string, deadLetter, events bool, want int) *group {
	g := &group{topic: topic, deadLetter: deadLetter}
	if want <= 1 {
		g.changes, g.labels, g.outs = g.oneChange[:0], g.oneLabel[:0], g.oneOut[:0]
		if events {
			g.events = g.oneEvent[:0]
		} else {
			g.msgs = g.oneMsg[:0]
		}
		return g
	}
	want = min(want, maxGroup)
	g.changes, g.labels, g.outs = make([]*pendingChange, 0, want), make([]string, 0, want), make([]outRef, 0, want)
	if events {
		g.events = make([]*core.Event, 0, want)
	} else {
		g.msgs = make([]*message.Message, 0, want)
	}
	return g
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
	// open holds the groups being filled, in the order they were opened:
	// a batch's changes mostly share one event type, hence one topic,
	// so there are rarely more than two (with the dead-letter topic).
	var opened [4]*group
	open := opened[:0]
	// get returns the open group of topic, or opens one with room for
	// want messages.
	get := func(topic string, dl bool, want int) *group {
		for _, g := range open {
			if g.topic == topic && g.deadLetter == dl {
				return g
			}
		}
		g := newGroup(topic, dl, s.evPub != nil && !dl, want)
		open = append(open, g)
		return g
	}
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
				if o.Event.Type != s.lastType || s.lastTopic == "" {
					s.lastType, s.lastTopic = o.Event.Type, s.c.r.opts.Topics.For(o.Event.Type)
				}
				g := get(s.lastTopic, false, len(batch)-i)
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
			g := get(s.c.r.opts.DeadLetterTopic, true, 1)
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
		// A flushed group's topic gets a new group, opened after the
		// others: groups are published in the order they were opened,
		// as a group's messages precede those of any group opened later.
		for k := 0; k < len(open); {
			if g := open[k]; g.size() >= maxGroup {
				open = append(open[:k], open[k+1:]...)
				s.publishGroup(g)
				continue
			}
			k++
		}
	}
	for _, g := range open {
		s.publishGroup(g)
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
