package memstream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// logEntry is a stored message, as subscribers deliver it, and when it was
// stored.
type logEntry struct {
	msg *message.Message
	at  time.Time
}

// copyMessage returns a copy of m that shares nothing with it, with room
// in its metadata for extra more entries.
func copyMessage(m *message.Message, extra int) *message.Message {
	c := message.NewMessage(m.UUID, append(message.Payload(nil), m.Payload...))
	md := make(message.Metadata, len(m.Metadata)+extra)
	for k, v := range m.Metadata {
		md[k] = v
	}
	c.Metadata = md
	return c
}

type groupKey struct{ group, topic string }

// group is a consumer group's state on one topic.
type group struct {
	// lease holds a token while one of the group's subscriptions reads.
	lease chan struct{}
	// offset is the committed offset: the offset of the first message not
	// acked yet, guarded by Stream.mu.
	offset int64
}

// Subscriber returns a subscriber reading as opts say. Each topic is one
// partition, whose offsets count its messages from 0.
//
// Without a group, each subscription starts where opts.From says
// (FromBeginning: every message stored) and commits nothing. With a group,
// the group's subscriptions on a topic share its committed offset, which
// the stream keeps across Close and Open: one of them at a time reads, the
// others wait and take over from the committed offset when it ends. The
// group's first subscription on a topic fixes where it starts, per
// opts.From, before Subscribe returns.
//
// Messages are delivered in offset order, up to opts.Window of them (one
// when Window is 0 or 1) before the first of them is acked. The committed
// offset advances past the acked messages at the start of the window only; a
// nacked message is delivered again, and so are those after it that were
// delivered but not acked. Each subscription's channel is closed when its
// context ends, the subscriber closes or the stream closes.
func (s *Stream) Subscriber(opts core.SubscribeOptions) (message.Subscriber, error) {
	switch opts.From {
	case core.FromEnd, core.FromBeginning:
	case core.FromTime:
		if opts.Since.IsZero() {
			return nil, errors.New("memstream: subscribe from time: SubscribeOptions.Since is zero; set the time to start from")
		}
	default:
		return nil, fmt.Errorf("memstream: subscribe: unknown start %d; use FromEnd, FromBeginning or FromTime", opts.From)
	}
	if opts.Window < 0 {
		return nil, fmt.Errorf("memstream: subscribe: window %d is negative; use 0 or 1 for one message at a time, more to deliver several before the first is acked", opts.Window)
	}
	return &subscriber{s: s, opts: opts, stop: make(chan struct{})}, nil
}

// Committed returns the committed offset of group on topic: how many of
// the topic's messages, from the first, the group has acked in a row. ok
// is false when the group never subscribed to topic.
func (s *Stream) Committed(group, topic string) (offset int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupKey{group, topic}]
	if !ok {
		return 0, false
	}
	return g.offset, true
}

// startLocked returns the offset where a subscription of topic without a
// committed offset starts. Called with s.mu held.
func (s *Stream) startLocked(topic string, opts core.SubscribeOptions) int64 {
	log := s.logs[topic]
	switch opts.From {
	case core.FromBeginning:
		return 0
	case core.FromTime:
		for i, e := range log {
			if !e.at.Before(opts.Since) {
				return int64(i)
			}
		}
	}
	return int64(len(log))
}

type subscriber struct {
	s    *Stream
	opts core.SubscribeOptions

	mu     sync.Mutex
	closed bool
	stop   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

var _ message.Subscriber = (*subscriber)(nil)

// Subscribe starts reading topic; see Stream.Subscriber.
func (sb *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("memstream: subscribe: empty topic; name the topic to read")
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.closed {
		return nil, fmt.Errorf("memstream: subscribe to topic %q: subscriber closed; get a new one from the stream", topic)
	}
	s := sb.s
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("memstream: subscribe to topic %q: stream closed; open it first", topic)
	}
	done := s.done
	var g *group
	var start int64
	if sb.opts.Group != "" {
		k := groupKey{sb.opts.Group, topic}
		if g = s.groups[k]; g == nil {
			g = &group{lease: make(chan struct{}, 1), offset: s.startLocked(topic, sb.opts)}
			s.groups[k] = g
		}
	} else {
		start = s.startLocked(topic, sb.opts)
	}
	s.mu.Unlock()

	sctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	sb.wg.Add(2)
	go func() {
		defer sb.wg.Done()
		select {
		case <-done:
		case <-sb.stop:
		case <-sctx.Done():
		}
		cancel()
	}()
	go func() {
		defer sb.wg.Done()
		defer close(out)
		defer cancel()
		if g == nil {
			sb.consume(sctx, topic, out, start, nil)
			return
		}
		select {
		case g.lease <- struct{}{}:
		case <-sctx.Done():
			return
		}
		defer func() { <-g.lease }()
		s.mu.Lock()
		start := g.offset
		s.mu.Unlock()
		sb.consume(sctx, topic, out, start, g)
	}()
	return out, nil
}

// consume delivers topic's messages from offset start through the window
// until ctx ends, committing to g when it is not nil. It returns once every
// delivered message's ack or nack is accounted for.
func (sb *subscriber) consume(ctx context.Context, topic string, out chan<- *message.Message, start int64, g *group) {
	s := sb.s
	var commit func(int64)
	if g != nil {
		commit = func(last int64) {
			s.mu.Lock()
			g.offset = last + 1
			s.mu.Unlock()
		}
	}
	w := core.NewAckWindow(sb.opts.Window, func(off int64) int64 { return off }, commit)
	after := start // the offset after the last one in the window
	// One goroutine watches the acks of every delivery, until nothing more
	// is sent, so that it accounts for the acks of the last deliveries too.
	defer w.StartTracking()()
	for {
		s.mu.Lock()
		log := s.logs[topic]
		changed := s.changed
		s.mu.Unlock()
		off, gen, ok := w.Next()
		if !ok && after < int64(len(log)) && w.Room() {
			off, ok = after, true
			w.Add(off)
			after++
		}
		if !ok {
			select {
			case <-changed:
			case <-w.Wake():
			case <-ctx.Done():
				return
			}
			continue
		}
		msg := copyMessage(log[off].msg, 1)
		msg.Metadata[core.MetadataPosition] = core.StreamPosition(topic, 0, off)
		mctx, cancel := context.WithCancel(ctx)
		msg.SetContext(mctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return
		}
		w.SentWatched(off, gen, msg, cancel)
	}
}

// Close ends every subscription, waits until their channels are closed,
// and is safe to call twice.
func (sb *subscriber) Close() error {
	sb.mu.Lock()
	if !sb.closed {
		sb.closed = true
		close(sb.stop)
	}
	sb.mu.Unlock()
	sb.wg.Wait()
	return nil
}
