// Package kafka is Tributary's production stream: Apache Kafka through
// IBM/sarama, in CloudEvents binary mode (ce_* record headers, data as the
// value, the partition key as the record key).
//
// The publisher batches with an asynchronous, idempotent producer that waits
// for all in-sync replicas; subscribers read with consumer groups (offsets
// committed after Ack) or from a start point without a group; source
// checkpoints live in a compacted topic beside the events, so a sidecar moved
// to another machine resumes where it stopped.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Type is the stream type ID used in YAML.
const Type = "kafka"

// Sentinel errors.
var (
	// ErrNotOpen is returned when the stream is used before a successful
	// Open.
	ErrNotOpen = errors.New("kafka stream not open")
	// ErrClosed is returned when the stream (until it is opened again), a
	// publisher or a subscriber is used after Close.
	ErrClosed = errors.New("kafka stream closed")
)

func init() {
	core.RegisterStream(core.StreamSpec{
		Type:    Type,
		Summary: "Apache Kafka (CloudEvents binary mode), with checkpoints in a compacted topic.",
		Config:  Config{},
		New:     func() core.Stream { return New() },
	})
}

// Stream is the Kafka stream. Construct it with New, then Configure, Open,
// use, and Close. Open may be called again after a failed Open and after
// Close: each Open starts afresh, with new connections and a new producer.
type Stream struct {
	mu     sync.Mutex
	cfg    Config
	hasCfg bool
	conn   *conn // the open connection, or the last one closed
	closed bool  // conn is closed and no Open has succeeded since
}

var _ core.Stream = (*Stream)(nil)

// conn is everything an open stream holds.
type conn struct {
	cfg    Config
	sc     *sarama.Config
	log    *slog.Logger
	client sarama.Client
	topics *topics
	pub    *publisher
	cps    *checkpoints

	subsMu sync.Mutex
	subs   map[*subscriber]struct{}

	closeOnce sync.Once
	closeErr  error
}

// New returns an unconfigured stream. It does no I/O.
func New() *Stream { return &Stream{} }

// Configure decodes and validates cfg. It does no I/O. Errors are
// *core.FieldError values naming the field.
func (s *Stream) Configure(cfg core.Config) error {
	c, err := ParseConfig(cfg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.hasCfg = c, true
	return nil
}

// Open connects to the brokers and starts the producer. It returns an error
// naming the brokers when none answers before ctx ends or the dial timeout
// passes; the runtime retries it. A failed Open leaves nothing running, and
// Open may be called again on the same stream, after a failed Open as after
// Close: it dials afresh. Publisher, Subscriber and Checkpoints taken before
// a Close stay closed; take them again after the new Open.
func (s *Stream) Open(ctx context.Context, env core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && !s.closed {
		return errors.New("open kafka stream: already open; Close it before opening it again")
	}
	// The last connection, if any, is closed (or being closed by the
	// Close that marked it): it stays with the handles taken on it.
	s.conn, s.closed = nil, false
	if !s.hasCfg {
		return fmt.Errorf("open kafka stream: %w", core.FieldErrorf("brokers", "the stream is not configured; set brokers"))
	}
	sc, err := s.cfg.saramaConfig()
	if err != nil {
		return err
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	client, err := dial(ctx, s.cfg.Brokers, sc)
	if err != nil {
		return err
	}
	c := &conn{cfg: s.cfg, sc: sc, log: logger, client: client, subs: map[*subscriber]struct{}{}}
	c.topics = newTopics(client, s.cfg, logger)
	metrics, err := newProducerMetrics(env.Metrics, env.Name)
	if err != nil {
		logger.Warn("kafka producer metrics not exported", "err", err)
	}
	pub, err := newPublisher(ctx, client, c.topics, logger, metrics)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("start kafka producer for %s: %w", strings.Join(s.cfg.Brokers, ","), err)
	}
	c.pub = pub
	c.cps = newCheckpoints(c)
	s.conn = c
	return nil
}

// dial connects a client, bounded by ctx as well as by the dial timeout.
func dial(ctx context.Context, brokers []string, sc *sarama.Config) (sarama.Client, error) {
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := sarama.NewClient(brokers, sc)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			if described := describeConnectError(r.err); described != r.err {
				// Refused credentials or certificate: retrying fails
				// alike, so say what to fix.
				return nil, fmt.Errorf("connect to kafka brokers %s: %w", strings.Join(brokers, ","), described)
			}
			return nil, fmt.Errorf("connect to kafka brokers %s: %w (check that they run and that brokers lists their address)", strings.Join(brokers, ","), r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		// The dial goroutine ends by itself within the dial timeout;
		// close whatever it produced.
		go func() {
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, fmt.Errorf("connect to kafka brokers %s: %w", strings.Join(brokers, ","), ctx.Err())
	}
}

func (s *Stream) open() (*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.conn == nil {
		return nil, ErrNotOpen
	}
	return s.conn, nil
}

// Publisher returns a handle on the stream's producer. It also implements
// core.AsyncPublisher. Closing the handle makes it refuse new publishes but
// leaves the stream's producer running for other handles; Close of the stream
// flushes and stops the producer. Before Open its methods return ErrNotOpen.
func (s *Stream) Publisher() message.Publisher {
	c, err := s.open()
	if err != nil {
		return &Publisher{err: err}
	}
	return &Publisher{p: c.pub}
}

// Subscriber returns a new subscriber reading as opts say. The caller closes
// it; Close of the stream closes it too.
func (s *Stream) Subscriber(opts core.SubscribeOptions) (message.Subscriber, error) {
	c, err := s.open()
	if err != nil {
		return nil, fmt.Errorf("create kafka subscriber: %w", err)
	}
	sub := newSubscriber(c, opts)
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if c.subs == nil {
		return nil, fmt.Errorf("create kafka subscriber: %w", ErrClosed)
	}
	c.subs[sub] = struct{}{}
	return sub, nil
}

// Checkpoints returns the checkpoint store on the compacted checkpoint
// topic. Before Open its methods return ErrNotOpen.
func (s *Stream) Checkpoints() core.CheckpointStore {
	c, err := s.open()
	if err != nil {
		return &Checkpoints{err: err}
	}
	return &Checkpoints{cps: c.cps}
}

// Ping returns nil when a broker answers a metadata request within ctx.
func (s *Stream) Ping(ctx context.Context) error {
	c, err := s.open()
	if err != nil {
		return err
	}
	ch := make(chan error, 1)
	go func() {
		// One topic in use: a ping must not cost the broker a listing of a
		// large cluster (it delays the produce requests around it). Before
		// any topic is in use, the request lists them all.
		if topic, ok := c.topics.any(); ok {
			ch <- c.client.RefreshMetadata(topic)
			return
		}
		ch <- c.client.RefreshMetadata()
	}()
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("ping kafka brokers %s: %w", strings.Join(c.cfg.Brokers, ","), err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ping kafka brokers %s: %w", strings.Join(c.cfg.Brokers, ","), ctx.Err())
	}
}

// Close closes every subscriber, flushes the messages still in flight
// (bounded by ctx: those not acknowledged when ctx ends fail with
// ErrClosed), then closes the connections. It is safe to call twice and
// after a failed Open. Until the next Open, the stream's methods return
// ErrClosed.
func (s *Stream) Close(ctx context.Context) error {
	s.mu.Lock()
	c := s.conn
	s.closed = c != nil
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() { c.closeErr = c.close(ctx) })
	return c.closeErr
}

func (c *conn) close(ctx context.Context) error {
	c.subsMu.Lock()
	subs := c.subs
	c.subs = nil
	c.subsMu.Unlock()
	var errs []error
	for sub := range subs {
		if err := sub.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.pub.close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := c.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		errs = append(errs, fmt.Errorf("close kafka client: %w", err))
	}
	return errors.Join(errs...)
}

// forget removes a closed subscriber from the stream's set.
func (c *conn) forget(sub *subscriber) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	delete(c.subs, sub)
}
