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

// Subscriber reads topics of the embedded stream; a topic is one partition.
// Each Subscribe returns an unbuffered channel that delivers the topic's
// messages in offset order. With SubscribeOptions.Window 0 or 1, one at a
// time: the next message is sent only after the previous one is acked, and
// a nacked message is sent again. With a larger Window, up to Window
// messages are sent before the first of them is acked; acks may come in any
// order, and a nack sends the message again, then those after it that were
// sent but not acked.
//
// Without a group, a subscription starts where SubscribeOptions.From says
// and commits nothing. With a group, the subscriptions of the group on one
// topic share its committed offset: one of them at a time reads (it holds
// the group's lease on the topic), the others wait and take over when it
// ends, so no message is lost and order is kept. The committed offset is
// that of the last message of the run of acked messages from the start (the
// low watermark), committed as the run grows.
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
	// queued is when the last commit was queued; delayed holds the
	// commit that waits for commitInterval to pass since then. flushMu
	// keeps the queueing of a delayed commit and the subscription's last
	// one in order: the last one goes after it.
	queued  time.Time
	delayed *time.Timer
	flushMu sync.Mutex
	// commits counts the commits queued, for the tests.
	commits int
}

// commitInterval is the least time between two commits of a group's
// offset on a topic: a sink acks thousands of messages a second, and one
// write of its offset every few milliseconds holds them all. A crash
// delivers again at most what was acked during the interval.
const commitInterval = 10 * time.Millisecond

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
	if opts.Window < 0 {
		return nil, fmt.Errorf("subscribe: window %d is negative; use 0 or 1 for one message at a time, more to deliver several before the first is acked", opts.Window)
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
		s.consume(lctx, topic, out, pos, -1, func(m stored) { s.commit(g, topic, m.offset) })
		s.flushCommit(g, topic, false)
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
// and on disk with the writer's next transaction, no sooner than
// commitInterval after the previous commit was queued.
func (s *Subscriber) commit(g *group, topic string, off int64) {
	g.mu.Lock()
	g.offset = off
	if g.pending || g.delayed != nil {
		// The commit queued or waiting stores this offset.
		g.mu.Unlock()
		return
	}
	if wait := commitInterval - time.Since(g.queued); wait > 0 {
		g.delayed = time.AfterFunc(wait, func() { s.flushCommit(g, topic, true) })
		g.mu.Unlock()
		return
	}
	g.pending, g.queued = true, time.Now()
	g.commits++
	g.mu.Unlock()
	s.queueCommit(g, topic)
}

// flushCommit queues the commit that waits, if one does; timer is true
// when its timer fired. A subscription ends with it, so that its last
// offset is committed before the group's lease is given up.
func (s *Subscriber) flushCommit(g *group, topic string, timer bool) {
	g.flushMu.Lock()
	defer g.flushMu.Unlock()
	g.mu.Lock()
	t := g.delayed
	if t == nil {
		g.mu.Unlock()
		return
	}
	if !timer {
		t.Stop()
	}
	g.delayed = nil
	g.pending, g.queued = true, time.Now()
	g.commits++
	g.mu.Unlock()
	s.queueCommit(g, topic)
}

// queueCommit hands the writer a commit of g's offset as it is when the
// writer stores it.
func (s *Subscriber) queueCommit(g *group, topic string) {
	c := &offsetCommit{group: s.opts.Group, topic: topic, latest: g}
	if err := s.st.enqueue(context.Background(), &op{commit: c}); err != nil {
		g.mu.Lock()
		g.pending = false
		off := g.offset
		g.mu.Unlock()
		if !errors.Is(err, ErrClosed) {
			s.st.logger.Warn("commit consumer offset failed", "group", s.opts.Group, "topic", topic, "offset", off, "error", err)
		}
	}
}

// consume delivers topic's messages after pos until ctx is done, or, when
// end is not negative, until the messages up to offset end are delivered
// and acked. Up to the subscriber's window of messages are out before the
// first of them is acked; acked, when not nil, is told the last message
// of the run of acked messages from the start whenever the run grows.
// consume returns once every delivery's ack or nack is accounted for.
func (s *Subscriber) consume(ctx context.Context, topic string, out chan<- *message.Message, pos, end int64, acked func(stored)) {
	w := core.NewAckWindow(s.opts.Window, storedOffset, acked)
	r := &reader{st: s.st, topic: topic, pos: pos, end: end, readable: true, done: end >= 0 && pos >= end, poll: time.NewTimer(pollInterval)}
	defer r.poll.Stop()
	if w.Size() > 1 {
		// One goroutine watches the acks of every delivery, until
		// nothing more is sent, so that it accounts for the acks of the
		// last deliveries too.
		defer w.StartTracking()()
	}
	for {
		if ctx.Err() != nil {
			return
		}
		if r.done && len(r.queue) == 0 && w.Empty() {
			return
		}
		m, gen, ok := w.Next()
		if !ok && w.Room() {
			r.fill(ctx)
			if len(r.queue) > 0 {
				m, gen, ok = r.queue[0], 0, true
				r.queue = r.queue[1:]
				w.Add(m)
			}
		}
		if !ok {
			if !r.wait(ctx, w.Wake()) {
				return
			}
			continue
		}
		// Every delivery gets its own copy of the payload and metadata,
		// whatever the previous one's handler did to them.
		msg := message.NewMessage(m.uuid, append(message.Payload(nil), m.payload...))
		msg.Metadata = decodeBinaryMetadata(m.metadata)
		msg.Metadata[core.MetadataPosition] = core.StreamPosition(topic, 0, m.offset)
		mctx, cancel := context.WithCancel(ctx)
		msg.SetContext(mctx)
		select {
		case out <- msg:
		case <-ctx.Done():
			cancel()
			return
		}
		if w.Size() == 1 {
			// One at a time: nothing to deliver until this one is acked.
			w.Sent(m.offset, gen, msg)
			w.Watch(ctx, msg, m.offset, gen)
			cancel()
			continue
		}
		w.SentWatched(m.offset, gen, msg, cancel)
	}
}

func storedOffset(m stored) int64 { return m.offset }

// reader reads a topic's messages for a subscription, a batch at a time,
// ahead of their delivery.
type reader struct {
	st    *store
	topic string
	pos   int64 // offset of the last message read
	end   int64 // when not negative, the last offset to read
	queue []stored
	// readable is set when there may be messages to read now; otherwise
	// the reader waits for changed (closed at the next commit of new
	// messages, nil after an error) or the poll timer.
	readable bool
	changed  <-chan struct{}
	poll     *time.Timer
	done     bool // end is not negative and every message up to it is read
}

// fill reads the next messages into the empty queue, if there may be some.
func (r *reader) fill(ctx context.Context) {
	if len(r.queue) > 0 || !r.readable || r.done {
		return
	}
	r.changed = r.st.changed()
	batch, more, err := r.st.readAfter(ctx, r.topic, r.pos, readBatch)
	if err != nil {
		if ctx.Err() == nil {
			r.st.logger.Error("read stream failed; retrying", "topic", r.topic, "error", err)
		}
		r.changed = nil // wait for the poll timer
		more = false
	}
	n := 0
	for _, m := range batch {
		if r.end >= 0 && m.offset > r.end {
			r.done = true
			break
		}
		r.pos = m.offset
		n++
	}
	r.queue = batch[:n]
	if r.end >= 0 && (r.pos >= r.end || (err == nil && !more)) {
		r.done = true // every message stored up to end is read
	}
	r.readable = more
	if !more {
		r.poll.Reset(pollInterval)
	}
}

// wait blocks until something may have changed: new messages may be there
// to read, or wake is signalled (an ack or a nack). It returns false when
// ctx ends first.
func (r *reader) wait(ctx context.Context, wake <-chan struct{}) bool {
	var changed <-chan struct{}
	var poll <-chan time.Time
	if !r.readable && !r.done {
		changed, poll = r.changed, r.poll.C
	}
	select {
	case <-changed:
		r.readable = true
	case <-poll:
		r.readable = true
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
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
