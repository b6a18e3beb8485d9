package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Subscriber reads topics of the embedded stream. Each Subscribe returns an
// unbuffered channel that delivers the topic's messages in offset order, one
// at a time: the next message is sent only after the previous one is acked,
// and a nacked message is sent again.
//
// Without a group, a subscription starts where SubscribeOptions.From says
// and commits nothing. With a group, the subscriptions of the group on one
// topic share its committed offset: one of them at a time reads (it holds
// the group's lease on the topic), the others wait and take over when it
// ends, so no message is lost and order is kept. The offset is committed
// after each ack.
//
// A Subscriber is safe for concurrent use. Close ends every subscription and
// closes their channels.
type Subscriber struct {
	st   *store
	opts core.SubscribeOptions

	mu      sync.Mutex
	closed  bool
	cancels map[int]context.CancelFunc
	next    int
	wg      sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// group is a consumer group's state on one topic, shared by the group's
// subscriptions in this process.
type group struct {
	lease chan struct{} // holds a token while a subscription reads

	mu      sync.Mutex
	loaded  bool
	offset  int64 // last acked offset
	pending bool  // a commit of offset is queued for the writer
}

func (st *store) group(name, topic string) *group {
	st.groupsMu.Lock()
	defer st.groupsMu.Unlock()
	k := offsetKey{name, topic}
	g, ok := st.groups[k]
	if !ok {
		g = &group{lease: make(chan struct{}, 1)}
		st.groups[k] = g
	}
	return g
}

func newSubscriber(st *store, opts core.SubscribeOptions) (*Subscriber, error) {
	switch opts.From {
	case core.FromEnd, core.FromBeginning:
	case core.FromTime:
		if opts.Since.IsZero() {
			return nil, errors.New("subscribe from time: SubscribeOptions.Since is zero; set the time to start from")
		}
	default:
		return nil, fmt.Errorf("subscribe: unknown start %d; use FromEnd, FromBeginning or FromTime", opts.From)
	}
	s := &Subscriber{st: st, opts: opts, cancels: map[int]context.CancelFunc{}}
	st.subsMu.Lock()
	defer st.subsMu.Unlock()
	if st.subs == nil {
		return nil, ErrClosed
	}
	st.subs[s] = struct{}{}
	return s, nil
}

// start resolves where a subscription without committed offset begins.
func (s *Subscriber) start(ctx context.Context) (int64, error) {
	switch s.opts.From {
	case core.FromBeginning:
		return 0, nil
	case core.FromTime:
		return s.st.offsetAt(ctx, s.opts.Since)
	default:
		return s.st.lastOffset(ctx)
	}
}

// Subscribe starts reading topic. The start position is fixed before it
// returns: with FromEnd, every message published after Subscribe returns is
// delivered. The channel is closed when ctx is done or the subscriber is
// closed; the context of each delivered message is cancelled after its ack
// or nack, and when the subscription ends.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribe(ctx, topic, false)
}

// SubscribeStored is Subscribe bounded to what topic holds when it is
// called: the channel delivers the messages from the start position up to
// the last one stored at that moment, and is closed once that one is acked
// (or ctx is done, or the subscriber is closed). `tributary events tail
// --no-follow` reads with it. Only a subscriber without a group has it.
func (s *Subscriber) SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.opts.Group != "" {
		return nil, fmt.Errorf("subscribe to the stored messages of topic %q: consumer group %q reads on from its committed offset; subscribe without a group", topic, s.opts.Group)
	}
	return s.subscribe(ctx, topic, true)
}

func (s *Subscriber) subscribe(ctx context.Context, topic string, stored bool) (<-chan *message.Message, error) {
	if topic == "" {
		return nil, errors.New("subscribe: empty topic; name the topic to read")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	sctx, cancel := context.WithCancel(ctx)
	id := s.next
	s.next++
	s.cancels[id] = cancel
	s.wg.Add(1)
	s.mu.Unlock()

	finish := func() {
		s.mu.Lock()
		delete(s.cancels, id)
		s.mu.Unlock()
		cancel()
		s.wg.Done()
	}

	var g *group
	var pos int64
	end := int64(-1) // follow
	var err error
	if s.opts.Group != "" {
		g = s.st.group(s.opts.Group, topic)
		err = s.initGroup(sctx, g, topic)
	} else {
		pos, err = s.start(sctx)
	}
	if err == nil && stored {
		end, err = s.st.lastOffset(sctx)
	}
	if err != nil {
		finish()
		return nil, fmt.Errorf("subscribe to topic %q: %w", topic, err)
	}

	out := make(chan *message.Message)
	go func() {
		defer finish()
		defer close(out)
		if g == nil {
			s.consume(sctx, topic, out, pos, end, nil)
			return
		}
		select {
		case g.lease <- struct{}{}:
		case <-sctx.Done():
			return
		}
		defer func() { <-g.lease }()
		s.consumeGroup(sctx, g, topic, out)
	}()
	return out, nil
}

// consumeGroup reads for the group while this process holds the group's
// lease on topic in the database, so that processes sharing the file
// share the group too. It renews the lease while reading and stops reading
// if it is lost (the process stalled for longer than the lease's TTL).
func (s *Subscriber) consumeGroup(ctx context.Context, g *group, topic string, out chan<- *message.Message) {
	key := offsetKey{s.opts.Group, topic}
	// Give the lease up for the next reader, also when ctx ended while it
	// was being taken. The writer stores the release after this reader's
	// last commit, and before the next reader in this process asks.
	defer func() { _ = s.st.enqueue(context.Background(), &op{lease: &leaseReq{key: key}}) }()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-retry.C:
		case <-ctx.Done():
			return
		}
		retry.Reset(pollInterval)
		got, err := s.st.lease(ctx, key, true)
		if err != nil || !got {
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
				s.st.logger.Warn("take consumer group lease failed; retrying", "group", key.group, "topic", topic, "error", err)
			}
			continue
		}
		// Another process may have read for the group: resume from the
		// committed offset, which the writer has stored before the lease
		// was taken.
		off, ok, err := s.st.committed(ctx, key.group, topic)
		if err != nil {
			continue
		}
		g.mu.Lock()
		if ok {
			g.offset = off
		}
		pos := g.offset
		g.mu.Unlock()

		lctx, lost := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			t := time.NewTicker(leaseTTL / 3)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					if got, err := s.st.lease(lctx, key, true); err == nil && !got {
						s.st.logger.Warn("consumer group lease lost; waiting to take it again", "group", key.group, "topic", topic)
						lost()
						return
					}
				case <-lctx.Done():
					return
				}
			}
		}()
		s.consume(lctx, topic, out, pos, -1, func(off int64) { s.commit(lctx, g, topic, off) })
		lost()
		<-renewed
		if ctx.Err() != nil {
			return
		}
	}
}

// initGroup loads the group's committed offset, or fixes and commits its
// start when it has none, so that the group's position is set from its
// first subscription on.
func (s *Subscriber) initGroup(ctx context.Context, g *group, topic string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.loaded {
		return nil
	}
	off, ok, err := s.st.committed(ctx, s.opts.Group, topic)
	if err != nil {
		return err
	}
	if !ok {
		if off, err = s.start(ctx); err != nil {
			return err
		}
		c := &offsetCommit{group: s.opts.Group, topic: topic, offset: off}
		if err := s.st.enqueue(ctx, &op{commit: c}); err != nil {
			return fmt.Errorf("commit start offset of group %q: %w", s.opts.Group, err)
		}
	}
	g.offset, g.loaded = off, true
	return nil
}

// commit records off as the group's last acked offset, in memory at once
// and on disk with the writer's next transaction.
func (s *Subscriber) commit(ctx context.Context, g *group, topic string, off int64) {
	g.mu.Lock()
	g.offset = off
	queued := g.pending
	g.pending = true
	g.mu.Unlock()
	if queued {
		return // the queued commit will store this offset
	}
	c := &offsetCommit{group: s.opts.Group, topic: topic, latest: g}
	if err := s.st.enqueue(ctx, &op{commit: c}); err != nil {
		g.mu.Lock()
		g.pending = false
		g.mu.Unlock()
		if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
			s.st.logger.Warn("commit consumer offset failed", "group", s.opts.Group, "topic", topic, "offset", off, "error", err)
		}
	}
}

// consume delivers topic's messages after pos until ctx is done, or, when
// end is not negative, until the messages up to offset end are delivered.
func (s *Subscriber) consume(ctx context.Context, topic string, out chan<- *message.Message, pos, end int64, acked func(int64)) {
	poll := time.NewTimer(pollInterval)
	defer poll.Stop()
	for {
		if end >= 0 && pos >= end {
			return
		}
		changed := s.st.changed()
		batch, more, err := s.st.readAfter(ctx, topic, pos, readBatch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.st.logger.Error("read stream failed; retrying", "topic", topic, "error", err)
			changed = nil // wait for the poll timer
		}
		for _, m := range batch {
			if end >= 0 && m.offset > end {
				return
			}
			if !deliver(ctx, out, m) {
				return
			}
			pos = m.offset
			if acked != nil {
				acked(pos)
			}
		}
		if more {
			continue
		}
		if end >= 0 && err == nil {
			return // every message stored up to end is delivered
		}
		poll.Reset(pollInterval)
		select {
		case <-changed:
		case <-poll.C:
		case <-ctx.Done():
			return
		}
	}
}

// deliver sends m until it is acked. It returns false when ctx ends first.
func deliver(ctx context.Context, out chan<- *message.Message, m stored) bool {
	for {
		// Every attempt gets its own copy of the payload and metadata,
		// whatever the previous one's handler did to them.
		msg := message.NewMessage(m.uuid, append(message.Payload(nil), m.payload...))
		msg.Metadata = decodeBinaryMetadata(m.metadata)
		mctx, cancel := context.WithCancel(ctx)
		msg.SetContext(mctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-msg.Acked():
			cancel()
			return true
		case <-msg.Nacked():
			cancel()
		case <-ctx.Done():
			cancel()
			// An ack that raced with the end still counts, so that the
			// group's offset moves past the message.
			select {
			case <-msg.Acked():
				return true
			default:
				return false
			}
		}
	}
}

// Close ends every subscription, waits until their channels are closed, and
// is safe to call twice.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	for _, cancel := range s.cancels {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.st.subsMu.Lock()
	delete(s.st.subs, s)
	s.st.subsMu.Unlock()
	return nil
}
