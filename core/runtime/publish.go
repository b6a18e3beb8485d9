package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// This file hands a session's groups to the stream in read order. A
// failure holds every later group back until the failed ones are published
// again (hold, resume, pump); an event the stream refuses for good is found
// by publishing its group's events one by one, and is dead-lettered (or
// stops the connector, with on_publish_error: stop).

// publishGroup hands g to the stream in read order, or holds it back
// behind groups that are being published again.
func (s *session) publishGroup(g *group) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.pmu.Lock()
	g.seq = s.nextGroup
	s.nextGroup++
	if s.trouble {
		s.hold(g)
		s.pmu.Unlock()
		return
	}
	s.inflight++
	ctx := s.epoch
	s.pmu.Unlock()
	s.send(ctx, g)
}

// send hands g to the stream under ctx, the epoch it was sent in; the
// caller holds sendMu and has counted g in flight.
func (s *session) send(ctx context.Context, g *group) {
	if g.start.IsZero() {
		g.start = time.Now()
	}
	finish := func(err error) { s.finished(g, err) }
	var err error
	if len(g.events) > 0 {
		err = s.evPub.PublishEvents(ctx, g.topic, g.events, finish)
	} else {
		err = s.pub.PublishAsync(ctx, g.topic, g.msgs, finish)
	}
	if err == nil {
		return
	}
	switch {
	case s.pubCtx.Err() != nil:
		// The session is ending: the group's changes stay uncommitted
		// and are read again after the next Open.
		s.pmu.Lock()
		s.inflight--
		s.pmu.Unlock()
	case ctx.Err() != nil:
		// A failure ended the epoch before the stream took g: it waits
		// behind the failed groups.
		s.pmu.Lock()
		s.inflight--
		s.hold(g)
		s.resume()
		s.pmu.Unlock()
	default:
		s.finished(g, err)
	}
}

// hold queues g, in read order, to be published by pump. Called with pmu
// held.
func (s *session) hold(g *group) {
	i := sort.Search(len(s.held), func(i int) bool {
		h := s.held[i]
		return h.seq > g.seq || h.seq == g.seq && h.sub > g.sub
	})
	s.held = slices.Insert(s.held, i, g)
}

// finished is the stream's answer for g. A failure holds back every later
// group until the failed ones are published again, in read order, so that
// no event overtakes an earlier one of its key (the stream fails the later
// messages of a key it had already taken; see core.AsyncPublisher).
func (s *session) finished(g *group, err error) {
	if err == nil {
		s.c.r.streamOK.Store(time.Now().UnixNano())
		s.publishLatency.Observe(time.Since(g.start).Seconds())
		s.delivered(g)
		s.pmu.Lock()
		s.inflight--
		s.resume()
		s.pmu.Unlock()
		return
	}
	stage := "publish"
	if g.deadLetter {
		stage = "dead_letter"
	}
	s.c.recordError(stage, fmt.Errorf("topic %q: %w", g.topic, err))
	s.pmu.Lock()
	defer s.pmu.Unlock()
	// End the epoch before this returns: the stream fails what it takes
	// until then, and refuses what comes after (core.AsyncPublisher), so
	// nothing sent without knowing of this failure is stored ahead of it.
	s.endEpoch()
	s.inflight--
	g.attempts++
	s.trouble = true
	switch {
	case errors.Is(err, core.ErrPermanent) && g.deadLetter:
		s.fail(core.Fatal(fmt.Errorf("the stream refused a record for dead-letter topic %q, stopping rather than losing it: %w", g.topic, err)))
		return
	case errors.Is(err, core.ErrPermanent) && s.c.cfg.OnPublishError == OnPublishErrorStop:
		s.fail(core.Fatal(fmt.Errorf("the stream refused an event for topic %q (on_publish_error: stop): %w", g.topic, err)))
		return
	case errors.Is(err, core.ErrPermanent) && g.size() > 1:
		// One or more of the events is refused: try them one by one.
		for i := range g.size() {
			one := &group{
				topic: g.topic, changes: g.changes[i : i+1], labels: g.labels[i : i+1], outs: g.outs[i : i+1],
				seq: g.seq, sub: g.sub*uint64(maxGroup) + uint64(i), isolate: true,
			}
			if len(g.events) > 0 {
				one.events = g.events[i : i+1]
			} else {
				one.msgs = g.msgs[i : i+1]
			}
			s.hold(one)
		}
	case errors.Is(err, core.ErrPermanent):
		dl, derr := s.refused(g, err)
		if derr != nil {
			s.fail(core.Fatal(derr))
			return
		}
		s.hold(dl)
	default:
		if g.deadLetter && g.attempts >= deadLetterAttempts {
			s.fail(core.Fatal(fmt.Errorf("write to dead-letter topic %q failed %d times, stopping rather than losing the record: %w", g.topic, g.attempts, err)))
			return
		}
		s.hold(g)
		s.paused = true
		s.failures++
	}
	s.resume()
}

// refused turns the one event of g, which the stream refused for good, into
// a dead-letter group in its place.
func (s *session) refused(g *group, err error) (*group, error) {
	ref := g.outs[0]
	o := Output{Rule: ref.rule, Event: ref.event, Err: err, Reason: ReasonPublishRefused}
	if ref.event != nil {
		o.Data = json.RawMessage(ref.event.Data)
		if !json.Valid(ref.event.Data) {
			o.Data = string(ref.event.Data)
		}
	}
	msg, derr := deadLetterMessage(s.c.cfg.Name, ref.ch, o)
	if derr != nil {
		return nil, fmt.Errorf("build dead-letter record for an event the stream refused: %w", derr)
	}
	s.c.log.Warn("the stream refused an event; it goes to the dead-letter topic", "topic", g.topic, "err", err)
	return &group{
		topic: s.c.r.opts.DeadLetterTopic, deadLetter: true, msgs: []*message.Message{msg},
		changes: g.changes, labels: []string{ReasonPublishRefused}, outs: g.outs,
		seq: g.seq, sub: g.sub,
	}, nil
}

// endEpoch cancels the context of the groups sent since the last pump.
// Called with pmu held.
func (s *session) endEpoch() {
	if s.cancelEpoch != nil {
		s.cancelEpoch()
	}
}

// resume schedules pump once nothing is in flight: after a backoff when the
// last failure was one to wait out, at once otherwise. Called with pmu held.
func (s *session) resume() {
	if !s.trouble || s.inflight > 0 || s.timer {
		return
	}
	var d time.Duration
	if s.paused {
		d = s.c.cfg.Retry.Delay(s.failures - 1)
	}
	s.timer = true
	time.AfterFunc(d, func() {
		if s.pubCtx.Err() == nil {
			s.pump()
		}
	})
}

// pump publishes the held groups again, in read order. An isolated group
// goes alone, and the rest waits for its answer; a new failure pauses the
// pump until resume calls it again.
func (s *session) pump() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.pmu.Lock()
	s.timer, s.paused = false, false
	s.endEpoch()
	s.epoch, s.cancelEpoch = context.WithCancel(s.pubCtx)
	ctx := s.epoch
	s.pmu.Unlock()
	for {
		s.pmu.Lock()
		if s.paused || ctx.Err() != nil {
			s.pmu.Unlock()
			return
		}
		if len(s.held) == 0 {
			s.trouble, s.failures = false, 0
			s.pmu.Unlock()
			return
		}
		g := s.held[0]
		if g.isolate && s.inflight > 0 {
			s.pmu.Unlock()
			return
		}
		s.held = s.held[1:]
		s.inflight++
		s.pmu.Unlock()
		s.send(ctx, g)
		if g.isolate {
			return
		}
	}
}

// delivered completes g's changes once g is durable.
func (s *session) delivered(g *group) {
	// A group's labels come in runs (a batch's changes mostly share one
	// event type): count each run at once.
	for i := 0; i < len(g.labels); {
		j := i + 1
		for j < len(g.labels) && g.labels[j] == g.labels[i] {
			j++
		}
		s.counter(g.deadLetter, g.labels[i]).Add(float64(j - i))
		i = j
	}
	if g.deadLetter {
		s.c.deadLettered.Add(uint64(g.size()))
	} else {
		s.c.eventsEmitted.Add(uint64(g.size()))
	}
	var now time.Time
	seqs := make([]uint64, 0, len(g.changes))
	for _, pc := range g.changes {
		if pc.left.Add(-1) == 0 {
			if pc.tr != nil {
				s.tracedDelivered(pc.tr)
			}
			if !pc.commitTime.IsZero() {
				if now.IsZero() {
					now = time.Now()
				}
				s.commitLatency.Observe(now.Sub(pc.commitTime).Seconds())
			}
			seqs = append(seqs, pc.seq)
		}
	}
	s.complete(seqs)
}

// counterKey names one of the session's event counters: of dead letters
// by reason, or of events emitted by type.
type counterKey struct {
	deadLetter bool
	label      string
}

// counter returns the counter of events emitted with type label, or of
// dead letters with reason label. Safe for concurrent use.
func (s *session) counter(deadLetter bool, label string) prometheus.Counter {
	k := counterKey{deadLetter, label}
	if c, ok := s.counters.Load(k); ok {
		return c.(prometheus.Counter)
	}
	var c prometheus.Counter
	if deadLetter {
		c = s.c.r.metrics.DeadLettered.WithLabelValues(s.c.cfg.Name, label)
	} else {
		c = s.c.r.metrics.EventsEmitted.WithLabelValues(s.c.cfg.Name, label)
	}
	s.counters.Store(k, c)
	return c
}

// deadLetterAttempts bounds retries of a dead-letter write before the
// connector stops: the change is then read again after a restart, never
// lost.
const deadLetterAttempts = 8
