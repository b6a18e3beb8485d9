package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Publisher is a handle on the stream's producer. Publish waits until every
// message is acknowledged by all in-sync replicas; PublishAsync enqueues and
// reports through a callback, so that many events share one produce request.
// Both are safe for concurrent use.
type Publisher struct {
	p      *publisher
	err    error // set when the handle was taken before Open
	closed atomic.Bool
}

var (
	_ message.Publisher   = (*Publisher)(nil)
	_ core.AsyncPublisher = (*Publisher)(nil)
)

// Publish sends msgs to topic and returns once all are acknowledged, or with
// the first error. Each message's metadata become record headers one to one,
// its payload the record value and its ce_partitionkey the record key.
func (h *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ch := make(chan error, 1)
	if err := h.PublishAsync(context.Background(), topic, msgs, func(err error) { ch <- err }); err != nil {
		return err
	}
	return <-ch
}

// PublishAsync enqueues msgs for topic and returns; done is called once when
// all of them are acknowledged, or with the first error. It blocks only
// while the producer's buffer is full, and no longer than ctx allows. When it
// returns an error, done is never called; messages enqueued before ctx ended
// may still be written (delivery is at least once, and event ids let
// consumers drop the duplicate of a retry).
func (h *Publisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	if h.err != nil {
		return fmt.Errorf("publish to kafka topic %q: %w", topic, h.err)
	}
	if h.closed.Load() {
		return fmt.Errorf("publish to kafka topic %q: publisher %w", topic, ErrClosed)
	}
	return h.p.publishAsync(ctx, topic, msgs, done)
}

// Close makes this handle refuse further publishes. The stream's producer
// keeps running for other handles until the stream is closed. It is safe to
// call twice.
func (h *Publisher) Close() error {
	h.closed.Store(true)
	return nil
}

// publisher owns the asynchronous producer of a stream.
type publisher struct {
	producer sarama.AsyncProducer
	topics   *topics
	log      *slog.Logger

	mu      sync.Mutex
	closed  bool
	closing chan struct{}  // closed when Close starts: enqueuing stops
	senders sync.WaitGroup // PublishAsync calls currently enqueuing
	calls   map[*call]struct{}

	dispatched chan struct{} // closed once Successes and Errors are drained

	// records recycles records (producer messages with their key, value
	// and headers) once the producer hands them back: no allocation per
	// event in the steady state, less GC.
	records sync.Pool
}

// call tracks the messages of one PublishAsync call.
type call struct {
	remaining atomic.Int64
	abandoned atomic.Bool // the caller got an error: done is never called
	once      sync.Once
	errMu     sync.Mutex
	err       error
	done      func(error)
	p         *publisher
}

func newPublisher(client sarama.Client, t *topics, log *slog.Logger) (*publisher, error) {
	producer, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return nil, err
	}
	p := &publisher{
		producer:   producer,
		topics:     t,
		log:        log,
		closing:    make(chan struct{}),
		calls:      map[*call]struct{}{},
		dispatched: make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for m := range producer.Successes() {
			switch md := m.Metadata.(type) {
			case *record:
				md.call.ack(nil)
				p.recycle(md)
			case *call: // a record built elsewhere, such as a checkpoint
				md.ack(nil)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for e := range producer.Errors() {
			err := fmt.Errorf("publish to kafka topic %q: %w", e.Msg.Topic, e.Err)
			switch md := e.Msg.Metadata.(type) {
			case *record:
				md.call.ack(err)
			case *call:
				md.ack(err)
			}
		}
	}()
	go func() {
		wg.Wait()
		close(p.dispatched)
	}()
	return p, nil
}

func (p *publisher) publishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	if err := p.topics.ensure(ctx, topic, false); err != nil {
		return err
	}
	if len(msgs) == 0 {
		done(nil)
		return nil
	}
	c := &call{done: done, p: p}
	records := make([]*sarama.ProducerMessage, len(msgs))
	now := time.Now()
	for i, m := range msgs {
		records[i] = p.toRecord(topic, m, c, now)
	}
	return p.enqueue(ctx, topic, c, records)
}

// enqueue hands records, all tracked by c, to the producer.
func (p *publisher) enqueue(ctx context.Context, topic string, c *call, records []*sarama.ProducerMessage) error {
	c.remaining.Store(int64(len(records)))
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("publish to kafka topic %q: %w", topic, ErrClosed)
	}
	p.senders.Add(1)
	p.calls[c] = struct{}{}
	p.mu.Unlock()
	defer p.senders.Done()

	in := p.producer.Input()
	for i, r := range records {
		select {
		case in <- r:
			continue
		case <-ctx.Done():
			c.abandon(len(records) - i)
			return fmt.Errorf("publish to kafka topic %q: %d of %d messages not enqueued: %w", topic, len(records)-i, len(records), ctx.Err())
		case <-p.closing:
			c.abandon(len(records) - i)
			return fmt.Errorf("publish to kafka topic %q: %w", topic, ErrClosed)
		}
	}
	return nil
}

// record is a producer message with room for its key, value and headers,
// recycled as a whole once the producer hands it back, so that building a
// record allocates nothing in the steady state: the key and value encoders
// are fields the message points to (an interface holding a pointer does not
// allocate), and the headers use the array inside.
type record struct {
	msg     sarama.ProducerMessage
	call    *call // the PublishAsync call the record belongs to
	key     rawBytes
	value   rawBytes
	headers [recordHeaders]sarama.RecordHeader
}

// recordHeaders is the room for headers inside a record: the eight usual
// CloudEvents attributes, ce_id and one spare. More headers spill to the
// heap.
const recordHeaders = 10

// rawBytes is a sarama.Encoder of bytes the producer only reads.
type rawBytes struct{ b []byte }

var _ sarama.Encoder = (*rawBytes)(nil)

// Encode returns the bytes.
func (r *rawBytes) Encode() ([]byte, error) { return r.b, nil }

// Length returns the number of bytes.
func (r *rawBytes) Length() int { return len(r.b) }

// headerID is the ce_id header key.
var headerID = []byte(core.HeaderID)

// toRecord maps a message to a record in CloudEvents binary mode: metadata
// to headers one to one (adding ce_id from the message UUID when absent),
// payload to value, the partition key to the record key. now is the record
// timestamp, read once per call rather than once per record.
func (p *publisher) toRecord(topic string, m *message.Message, c *call, now time.Time) *sarama.ProducerMessage {
	r, _ := p.records.Get().(*record)
	if r == nil {
		r = &record{}
	}
	headers := r.headers[:0]
	hasID := false
	var key string
	for k, v := range m.Metadata {
		headers = append(headers, sarama.RecordHeader{Key: bytesOf(k), Value: bytesOf(v)})
		switch k {
		case core.HeaderID:
			hasID = true
		case core.MetadataKey:
			key = v
		}
	}
	if !hasID {
		headers = append(headers, sarama.RecordHeader{Key: headerID, Value: bytesOf(m.UUID)})
	}
	r.msg.Topic = topic
	r.msg.Timestamp = now
	r.value.b = m.Payload
	r.msg.Value = &r.value
	r.msg.Headers = headers
	r.call = c
	r.msg.Metadata = r
	if key != "" {
		r.key.b = bytesOf(key)
		r.msg.Key = &r.key
	}
	return &r.msg
}

// recycle returns a producer message the producer is done with to the pool.
// Only messages that succeeded are recycled: a failed one may still be
// referenced by an error the caller holds.
func (p *publisher) recycle(r *record) {
	*r = record{}
	p.records.Put(r)
}

// ack counts one message of the call as finished.
func (c *call) ack(err error) {
	if err != nil {
		c.errMu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.errMu.Unlock()
	}
	if c.remaining.Add(-1) == 0 {
		c.errMu.Lock()
		err := c.err
		c.errMu.Unlock()
		c.finish(err)
	}
}

// abandon gives up the n messages that were never enqueued. done is not
// called for an abandoned call.
func (c *call) abandon(n int) {
	c.abandoned.Store(true)
	if c.remaining.Add(-int64(n)) == 0 {
		c.finish(nil)
	}
}

func (c *call) finish(err error) {
	c.once.Do(func() {
		c.p.mu.Lock()
		delete(c.p.calls, c)
		c.p.mu.Unlock()
		if !c.abandoned.Load() {
			c.done(err)
		}
	})
}

// close stops intake, flushes what is in flight and stops the producer.
// When ctx ends first, the calls still waiting fail with ErrClosed and the
// producer finishes its retries in the background.
func (p *publisher) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	p.mu.Unlock()

	p.senders.Wait()
	p.producer.AsyncClose()
	select {
	case <-p.dispatched:
		return nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	pending := make([]*call, 0, len(p.calls))
	for c := range p.calls {
		pending = append(pending, c)
	}
	p.mu.Unlock()
	for _, c := range pending {
		c.finish(fmt.Errorf("kafka producer closed before the broker acknowledged: %w", ErrClosed))
	}
	return fmt.Errorf("flush kafka producer: %d publish calls unacknowledged: %w", len(pending), errors.Join(ctx.Err(), ErrClosed))
}

// bytesOf returns the bytes of s without copying them. The producer only
// reads header bytes (to encode them), never writes, so sharing the string's
// memory is safe and saves a copy of every header of every message.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
