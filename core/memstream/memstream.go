// Package memstream is an in-memory core.Stream: a recording test double
// for the runtime and for connector tests. It keeps every published message,
// can be told to fail publishes, and serves subscribers through watermill's
// GoChannel. It is not durable and is not registered in the default
// registry; tests add it to their own with Spec.
package memstream

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

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
	closed   bool
	opened   bool
	ch       *gochannel.GoChannel
	cps      *Checkpoints
}

// Published is one message as it was stored, with its topic.
type Published struct {
	Topic   string
	Message *message.Message
}

// New returns an empty stream.
func New() *Stream {
	s := &Stream{
		topics: map[string][]*message.Message{},
		ch:     gochannel.NewGoChannel(gochannel.Config{Persistent: true, OutputChannelBuffer: 1024}, nil),
		cps:    NewCheckpoints(),
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

// Open marks the stream open.
func (s *Stream) Open(context.Context, core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened = true
	return nil
}

// Publisher returns the recording publisher.
func (s *Stream) Publisher() message.Publisher { return &publisher{s: s} }

// Subscriber returns a subscriber that sees every message published so far
// and from now on (the options are ignored).
func (s *Stream) Subscriber(core.SubscribeOptions) (message.Subscriber, error) {
	return nopCloseSubscriber{s.ch}, nil
}

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

// Close closes the stream; it is safe to call twice.
func (s *Stream) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cond.Broadcast()
		return s.ch.Close()
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

func (s *Stream) store(topic string, msgs []*message.Message) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("memstream: publish on closed stream")
	}
	if err := s.failTop[topic]; err != nil {
		s.mu.Unlock()
		return err
	}
	if s.failNext > 0 {
		s.failNext--
		err := s.failErr
		s.mu.Unlock()
		return err
	}
	for _, m := range msgs {
		s.topics[topic] = append(s.topics[topic], m)
		s.order = append(s.order, Published{Topic: topic, Message: m})
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	copies := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		copies[i] = m.Copy()
	}
	return s.ch.Publish(topic, copies...)
}

type publisher struct{ s *Stream }

func (p *publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.s.store(topic, msgs)
}

func (p *publisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := p.s.store(topic, msgs)
	go done(err)
	return nil
}

func (p *publisher) Close() error { return nil }

type nopCloseSubscriber struct{ *gochannel.GoChannel }

func (nopCloseSubscriber) Close() error { return nil }

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
