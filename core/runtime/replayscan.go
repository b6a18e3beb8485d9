package runtime

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// storedSubscriber is the optional capability of a stream's subscriber a
// replay needs: SubscribeStored is Subscribe bounded to what the topic
// holds when it is called. The embedded and Kafka streams have it.
type storedSubscriber interface {
	SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error)
}

// replayHead is the next event of one topic of a replay.
type replayHead struct {
	ch  <-chan *message.Message
	msg *message.Message
	ev  *core.Event
}

// scanReplay calls fn with each event f chooses for a replay to s, in the
// order they are to be delivered: first those of the archive older than
// the oldest event the stream holds on s's topics, in time order; then
// the stream's, up to what it holds now, each topic in stream order and
// the topics merged by event time (so that events of one key on the
// topics of several types go in the order they happened). An event the
// archive gave is not given again from the stream: the archive is asked
// whether it holds each of the stream's events in the time range it gave. It stops at fn's first
// error, which it returns.
func (r *Runtime) scanReplay(ctx context.Context, s *sinkRunner, f ReplayFilter, archive ReplayArchive, fn func(m *message.Message, ev *core.Event, archived bool) error) error {
	opts := core.SubscribeOptions{From: core.FromBeginning}
	if !f.Since.IsZero() {
		opts.From, opts.Since = core.FromTime, f.Since
	}
	sub, err := r.opts.Stream.Subscriber(opts)
	if err != nil {
		return fmt.Errorf("replay to sink %q: subscribe: %w", s.cfg.Name, err)
	}
	defer sub.Close()
	ss, ok := sub.(storedSubscriber)
	if !ok {
		return fmt.Errorf("replay to sink %q: the stream's subscriber (%T) cannot tell where its stored events end; replay needs the embedded or the kafka stream", s.cfg.Name, sub)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var heads []*replayHead
	for _, topic := range s.topics {
		ch, err := ss.SubscribeStored(sctx, topic)
		if err != nil {
			return fmt.Errorf("replay to sink %q: subscribe to topic %q: %w", s.cfg.Name, topic, err)
		}
		h := &replayHead{ch: ch}
		if err := h.next(ctx); err != nil {
			return err
		}
		if h.ev != nil {
			heads = append(heads, h)
		}
	}

	// archived tells whether the archive gave ev already: only an event
	// of the time range the archive was asked for (since <= time < until)
	// can be there.
	archived := func(*core.Event) (bool, error) { return false, nil }
	if archive != nil {
		af, ok := archiveRange(f, heads)
		if ok {
			err := archive.Events(ctx, af, func(ev *core.Event) error {
				if !f.matches(ev) {
					return nil
				}
				return fn(ev.ToMessage(), ev, true)
			})
			if err != nil {
				return fmt.Errorf("replay to sink %q: read the archive: %w", s.cfg.Name, err)
			}
			archived = func(ev *core.Event) (bool, error) {
				if ev.Time.IsZero() {
					// The archive gives events with no time only to a
					// query without a time range.
					if !af.Since.IsZero() || !af.Until.IsZero() {
						return false, nil
					}
				} else if (!af.Since.IsZero() && ev.Time.Before(af.Since)) || (!af.Until.IsZero() && !ev.Time.Before(af.Until)) {
					return false, nil
				}
				held, err := archive.Holds(ctx, ev.ID)
				if err != nil {
					return false, fmt.Errorf("replay to sink %q: look for event %s in the archive: %w", s.cfg.Name, ev.ID, err)
				}
				return held, nil
			}
		}
	}

	for len(heads) > 0 {
		i := 0
		for j, h := range heads {
			if h.ev.Time.Before(heads[i].ev.Time) {
				i = j
			}
		}
		h := heads[i]
		if f.matches(h.ev) {
			gone, err := archived(h.ev)
			if err != nil {
				return err
			}
			if !gone {
				if err := fn(h.msg, h.ev, false); err != nil {
					return err
				}
			}
		}
		if err := h.next(ctx); err != nil {
			return err
		}
		if h.ev == nil {
			heads = append(heads[:i], heads[i+1:]...)
		}
	}
	return nil
}

// archiveRange returns the part of f's time range the archive is asked
// for: up to the oldest event the stream holds on the sink's topics (all
// of it when the stream holds none). ok is false when that part is empty.
func archiveRange(f ReplayFilter, heads []*replayHead) (ReplayFilter, bool) {
	var oldest *core.Event
	for _, h := range heads {
		if !h.ev.Time.IsZero() && (oldest == nil || h.ev.Time.Before(oldest.Time)) {
			oldest = h.ev
		}
	}
	af := f
	if oldest != nil && (af.Until.IsZero() || oldest.Time.Before(af.Until)) {
		af.Until = oldest.Time
	}
	if !af.Since.IsZero() && !af.Until.IsZero() && !af.Until.After(af.Since) {
		return af, false
	}
	return af, true
}

// next reads the topic's next CloudEvent, acking what it reads (the
// subscription has no group: acks commit nothing); ev is nil at the end.
// Messages that are not CloudEvents are passed over: a replay's filter
// cannot tell whether it chooses them.
func (h *replayHead) next(ctx context.Context) error {
	h.msg, h.ev = nil, nil
	for {
		var m *message.Message
		var ok bool
		select {
		case m, ok = <-h.ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			return nil
		}
		cp := m.Copy()
		m.Ack()
		ev, err := core.EventFromMessage(cp)
		if err != nil {
			continue
		}
		h.msg, h.ev = cp, ev
		return nil
	}
}
