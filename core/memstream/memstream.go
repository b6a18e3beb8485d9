// Package memstream is an in-memory core.Stream: a recording test double
// for the runtime and for connector tests. It keeps every published message,
// can be told to fail publishes, and serves subscribers that read each
// topic as one partition, with consumer groups whose committed offsets it
// keeps (see Stream.Subscriber). It is not durable and is not registered in
// the default registry; tests add it to their own with Spec.
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

// ErrInjected is the error of publishes failed on purpose with FailNext.
var ErrInjected = errors.New("memstream: injected publish failure")

// Stream is an in-memory stream. The zero value is not usable; call New.
type Stream struct {
	mu       sync.Mutex
	cond     *sync.Cond
	topics   map[string][]*message.Message
	order    []Published
	failNext int
	failErr  error
	failTop  map[string]error
	refuse   func(topic string, m *message.Message) error
	openErrs []error
	opens    int
	// poisoned counts, per topic, failures whose done has not returned
	// yet: publishes on the topic fail meanwhile, so that nothing is
	// stored ahead of a failed message (the ordering contract of
	// core.AsyncPublisher).
	poisoned map[string]int
	closed   bool
	opened   bool
	cps      *Checkpoints
	// logs holds, per topic, a private copy of each stored message that
	// subscribers deliver copies of; its index is the message's offset.
	logs map[string][]logEntry
	// changed is closed, and replaced, whenever messages are stored.
	changed chan struct{}
	// done is closed by Close, ending every subscription, and replaced by
	// the next Open.
	done   chan struct{}
	groups map[groupKey]*group
}

// Published is one message as it was stored, with its topic.
type Published struct {
	Topic   string
	Message *message.Message
}

// New returns an empty stream.
func New() *Stream {
	s := &Stream{
		topics:   map[string][]*message.Message{},
		cps:      NewCheckpoints(),
		poisoned: map[string]int{},
		logs:     map[string][]logEntry{},
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
		groups:   map[groupKey]*group{},
	}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Spec returns a StreamSpec registering type "memory" that always yields s.
func Spec(s *Stream) core.StreamSpec {
	return core.StreamSpec{Type: "memory", Summary: "In-memory test stream.", New: func() core.Stream { return s }}
}

var (
	_ core.Stream         = (*Stream)(nil)
	_ core.AsyncPublisher = (*publisher)(nil)
)

// Configure accepts an empty configuration.
func (s *Stream) Configure(cfg core.Config) error { return cfg.Decode(&struct{}{}) }

// Open marks the stream open. It fails with the errors given to FailOpen
// first, one per call. Open may follow Close: the stream keeps what it
// stored and the groups' committed offsets, and serves new subscriptions.
func (s *Stream) Open(context.Context, core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if len(s.openErrs) > 0 {
		err := s.openErrs[0]
		s.openErrs = s.openErrs[1:]
		return err
	}
	if s.closed {
		s.closed = false
		s.done = make(chan struct{})
	}
	s.opened = true
	return nil
}

// FailOpen makes the next len(errs) calls to Open fail, in turn, with errs.
func (s *Stream) FailOpen(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openErrs = append(s.openErrs, errs...)
}

// Opens returns how many times Open was called.
func (s *Stream) Opens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opens
}

// Refuse makes the stream refuse, for good, every message for which f
// returns an error: the publish fails with that error wrapped by
// core.Permanent, as a broker refuses a record larger than it accepts. A
// nil f refuses nothing.
func (s *Stream) Refuse(f func(topic string, m *message.Message) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

// Publisher returns the recording publisher.
func (s *Stream) Publisher() message.Publisher { return &publisher{s: s} }

// Checkpoints returns the in-memory checkpoint store.
func (s *Stream) Checkpoints() core.CheckpointStore { return s.cps }

// Ping returns nil while the stream is open.
func (s *Stream) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("memstream: closed")
	}
	return nil
}

// Close closes the stream, ending every subscription (their channels are
// closed); it is safe to call twice.
func (s *Stream) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cond.Broadcast()
		close(s.done)
	}
	return nil
}

// FailNext makes the next n publish calls fail with err (ErrInjected when
// err is nil).
func (s *Stream) FailNext(n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failErr = n, err
}

// FailTopic makes every publish to topic fail with err until it is called
// again with a nil err.
func (s *Stream) FailTopic(topic string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failTop == nil {
		s.failTop = map[string]error{}
	}
	if err == nil {
		delete(s.failTop, topic)
		return
	}
	s.failTop[topic] = err
}

// Messages returns the messages published on topic, in order.
func (s *Stream) Messages(topic string) []*message.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*message.Message(nil), s.topics[topic]...)
}

// All returns every stored message with its topic, in publish order.
func (s *Stream) All() []Published {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Published(nil), s.order...)
}

// Len returns how many messages are stored.
func (s *Stream) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// WaitLen blocks until at least n messages are stored or ctx is done.
func (s *Stream) WaitLen(ctx context.Context, n int) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) < n {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("memstream: %d of %d messages: %w", len(s.order), n, err)
		}
		s.cond.Wait()
	}
	return nil
}

func (s *Stream) store(ctx context.Context, topic string, msgs []*message.Message) error {
	// Subscribers deliver copies of these private copies, so that nothing
	// the publisher or a handler does to a message changes what is stored.
	entries := make([]logEntry, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		entries[i] = logEntry{msg: copyMessage(m, 0), at: now}
	}
	s.mu.Lock()
	if err := ctx.Err(); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.refused(topic, msgs); err != nil {
		// Poisoned until the caller's done returns (see PublishAsync).
		s.poisoned[topic]++
		s.mu.Unlock()
		return err
	}
	for _, m := range msgs {
		s.topics[topic] = append(s.topics[topic], m)
		s.order = append(s.order, Published{Topic: topic, Message: m})
	}
	s.logs[topic] = append(s.logs[topic], entries...)
	s.cond.Broadcast()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// refused returns why msgs cannot be stored on topic now, or nil. Called
// with s.mu held.
func (s *Stream) refused(topic string, msgs []*message.Message) error {
	if s.closed {
		return errors.New("memstream: publish on closed stream")
	}
	if s.poisoned[topic] > 0 {
		return fmt.Errorf("memstream: an earlier publish on topic %q failed", topic)
	}
	if s.refuse != nil {
		for _, m := range msgs {
			if err := s.refuse(topic, m); err != nil {
				return core.Permanent(fmt.Errorf("memstream: message %s refused: %w", m.UUID, err))
			}
		}
	}
	if err := s.failTop[topic]; err != nil {
		return err
	}
	if s.failNext > 0 {
		s.failNext--
		return s.failErr
	}
	return nil
}

type publisher struct{ s *Stream }

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	err := p.s.store(context.Background(), topic, msgs)
	if err != nil {
		p.s.poison(topic, -1)
	}
	return err
}

// PublishAsync stores msgs at once and reports from another goroutine. A
// failure fails every publish on the topic until its done returns, as a
// broker fails the batches queued behind a failed one (the ordering
// contract of core.AsyncPublisher); Publish reports at once and lifts it.
func (p *publisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	err := p.s.store(ctx, topic, msgs)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return err
	}
	if err == nil {
		go done(nil)
		return nil
	}
	go func() {
		defer p.s.poison(topic, -1)
		done(err)
	}()
	return nil
}

func (s *Stream) poison(topic string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poisoned[topic] += d
}

func (p *publisher) Close() error { return nil }

// Checkpoints is an in-memory core.CheckpointStore.
type Checkpoints struct {
	mu    sync.Mutex
	cps   map[string]core.Checkpoint
	saves int
}

// NewCheckpoints returns an empty store.
func NewCheckpoints() *Checkpoints { return &Checkpoints{cps: map[string]core.Checkpoint{}} }

// Load returns the connector's checkpoint.
func (c *Checkpoints) Load(_ context.Context, connector string) (core.Checkpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.cps[connector]
	return cp, ok, nil
}

// Save stores cp.
func (c *Checkpoints) Save(_ context.Context, cp core.Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cps[cp.Connector] = cp
	c.saves++
	return nil
}

// Saves returns how many times Save was called.
func (c *Checkpoints) Saves() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.saves
}
