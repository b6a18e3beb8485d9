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
	_ core.EventPublisher = (*Publisher)(nil)
)

// Publish sends msgs to topic and returns once all are acknowledged, or with
// the first error. Each message's metadata become record headers one to one,
// its payload the record value and its ce_partitionkey the record key.
func (h *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := h.usable(topic); err != nil {
		return err
	}
	ch := make(chan error, 1)
	if err := h.p.publishAsync(context.Background(), topic, msgs, func(err error) { ch <- err }, true); err != nil {
		return err
	}
	return <-ch
}

// PublishAsync enqueues msgs for topic and returns; done is called once when
// all of them are acknowledged, or with the first error. The producer
// reads each message's payload until done is called: it must not change
// meanwhile. It blocks only
// while the producer's buffer is full, and no longer than ctx allows. The
// call's messages are enqueued all at once: when it returns an error (ctx
// done included), none was, and done is never called. A call that finally
// fails on a partition fails every record of the partition enqueued before
// its done returns, as core.AsyncPublisher requires (see ordering.go).
func (h *Publisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	if err := h.usable(topic); err != nil {
		return err
	}
	return h.p.publishAsync(ctx, topic, msgs, done, false)
}

// PublishEvents publishes events as PublishAsync publishes their ToMessage
// forms, without building the messages: each event's attributes become
// record headers directly, its data the value and its partition key the
// key. As with PublishAsync, an event's data must not change until done is
// called.
func (h *Publisher) PublishEvents(ctx context.Context, topic string, events []*core.Event, done func(error)) error {
	if err := h.usable(topic); err != nil {
		return err
	}
	return h.p.publishEvents(ctx, topic, events, done)
}

// usable returns why h cannot publish to topic, or nil.
func (h *Publisher) usable(topic string) error {
	if h.err != nil {
		return fmt.Errorf("publish to kafka topic %q: %w", topic, h.err)
	}
	if h.closed.Load() {
		return fmt.Errorf("publish to kafka topic %q: publisher %w", topic, ErrClosed)
	}
	return nil
}

// Close makes this handle refuse further publishes. The stream's producer
// keeps running for other handles until the stream is closed. It is safe to
// call twice.
func (h *Publisher) Close() error {
	h.closed.Store(true)
	return nil
}

// publisher owns the producer of a stream and tracks the publish calls in
// flight.
type publisher struct {
	prod   *producer
	topics *topics
	log    *slog.Logger

	mu      sync.Mutex
	closed  bool
	closing chan struct{}  // closed when Close starts: enqueuing stops
	senders sync.WaitGroup // PublishAsync calls currently enqueuing
	calls   map[*call]struct{}
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
	// poisons are the partitions where the call failed, which fail what
	// is enqueued for them until done returns. Guarded by producer.mu.
	poisons []*partition
	// waited: the caller waits for done (Publish, a checkpoint save), so
	// nothing is published in its name before done returns, and its
	// poisons are lifted before done is called: its next call is not
	// failed for this one.
	waited bool
}

func newPublisher(ctx context.Context, client sarama.Client, t *topics, log *slog.Logger, metrics *producerMetrics) (*publisher, error) {
	prod, err := newProducer(ctx, client, client.Config(), log, metrics)
	if err != nil {
		return nil, err
	}
	return &publisher{
		prod:    prod,
		topics:  t,
		log:     log,
		closing: make(chan struct{}),
		calls:   map[*call]struct{}{},
	}, nil
}

func (p *publisher) publishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error), waited bool) error {
	size := 0
	for _, m := range msgs {
		size += len(m.Payload) + 256
	}
	return p.publishRecords(ctx, topic, len(msgs), size, done, waited, func(i int, h []sarama.RecordHeader, buf []byte) ([]byte, []byte, []sarama.RecordHeader, []byte) {
		m := msgs[i]
		h = appendHeaders(h, m)
		var key []byte
		if k := m.Metadata[core.MetadataKey]; k != "" {
			key = bytesOf(k)
		}
		return key, m.Payload, h, buf
	})
}

func (p *publisher) publishEvents(ctx context.Context, topic string, events []*core.Event, done func(error)) error {
	size := 0
	for _, e := range events {
		size += len(e.Data) + 256
	}
	return p.publishRecords(ctx, topic, len(events), size, done, false, func(i int, h []sarama.RecordHeader, buf []byte) ([]byte, []byte, []sarama.RecordHeader, []byte) {
		e := events[i]
		h, buf = appendEventHeaders(h, buf, e)
		var key []byte
		if e.PartitionKey != "" {
			key = bytesOf(e.PartitionKey)
		}
		return key, e.Data, h, buf
	})
}

// publishRecords enqueues n records for topic, about size bytes, tracked
// by one call that reports to done (waited: see call). record gives record
// i's key, value and headers (appended to h, their bytes views of the
// caller's or appended to buf), which the producer copies.
func (p *publisher) publishRecords(ctx context.Context, topic string, n, size int, done func(error), waited bool, record func(i int, h []sarama.RecordHeader, buf []byte) (key, value []byte, headers []sarama.RecordHeader, _ []byte)) error {
	select {
	case <-p.closing:
		// Before the topic check, which would fail on the closed client.
		return fmt.Errorf("publish to kafka topic %q: %w", topic, ErrClosed)
	default:
	}
	if err := p.topics.ensure(ctx, topic, false); err != nil {
		return err
	}
	if n == 0 {
		done(nil)
		return nil
	}
	c := &call{done: done, p: p, waited: waited}
	return p.enqueueWith(ctx, topic, c, n, size, func(parts []*partition, ts int64, now time.Time, w *wakeSet) {
		pr := p.prod
		for i := range n {
			key, value, h, buf := record(i, pr.headers[:0], pr.scratch[:0])
			pr.headers, pr.scratch = h, buf
			pr.add(parts, key, value, h, ts, now, c, w)
		}
	})
}

// appendEventHeaders appends as record headers what appendHeaders appends
// for e.ToMessage(): its attributes, and ce_id from its id. The headers'
// bytes are views of e's strings, or appended to buf (the time).
func appendEventHeaders(dst []sarama.RecordHeader, buf []byte, e *core.Event) ([]sarama.RecordHeader, []byte) {
	e.EachAttribute(func(k, v string, t time.Time) {
		if k == core.HeaderTime {
			at := len(buf)
			buf = t.UTC().AppendFormat(buf, time.RFC3339Nano)
			dst = append(dst, sarama.RecordHeader{Key: bytesOf(k), Value: buf[at:len(buf):len(buf)]})
			return
		}
		dst = append(dst, sarama.RecordHeader{Key: bytesOf(k), Value: bytesOf(v)})
	})
	return append(dst, sarama.RecordHeader{Key: bytesOf(core.HeaderID), Value: bytesOf(e.ID)}), buf
}

// appendHeaders appends the metadata of m as record headers, one to one,
// adding ce_id from the message UUID when absent. The headers' bytes are
// views of m's strings.
func appendHeaders(dst []sarama.RecordHeader, m *message.Message) []sarama.RecordHeader {
	hasID := false
	for k, v := range m.Metadata {
		dst = append(dst, sarama.RecordHeader{Key: bytesOf(k), Value: bytesOf(v)})
		if k == core.HeaderID {
			hasID = true
		}
	}
	if !hasID {
		dst = append(dst, sarama.RecordHeader{Key: bytesOf(core.HeaderID), Value: bytesOf(m.UUID)})
	}
	return dst
}

// enqueue hands records, all tracked by c, to the producer: their key,
// value and headers as they are.
func (p *publisher) enqueue(ctx context.Context, topic string, c *call, records []*sarama.ProducerMessage) error {
	type rec struct{ key, value []byte }
	recs := make([]rec, len(records))
	size := 0
	for i, r := range records {
		var err error
		if r.Key != nil {
			if recs[i].key, err = r.Key.Encode(); err != nil {
				return fmt.Errorf("publish to kafka topic %q: encode key: %w", topic, err)
			}
		}
		if r.Value != nil {
			if recs[i].value, err = r.Value.Encode(); err != nil {
				return fmt.Errorf("publish to kafka topic %q: encode value: %w", topic, err)
			}
		}
		size += len(recs[i].key) + len(recs[i].value) + 256
	}
	return p.enqueueWith(ctx, topic, c, len(records), size, func(parts []*partition, ts int64, now time.Time, w *wakeSet) {
		pr := p.prod
		for i, r := range records {
			pr.add(parts, recs[i].key, recs[i].value, r.Headers, ts, now, c, w)
		}
	})
}

// enqueueWith registers c for n records taking about size bytes, waits for
// room in the producer's buffer and calls add with the producer locked.
// Either every record is enqueued or, with an error, none is.
func (p *publisher) enqueueWith(ctx context.Context, topic string, c *call, n, size int, add func(parts []*partition, ts int64, now time.Time, w *wakeSet)) error {
	parts, err := p.prod.partitions(topic)
	if err != nil {
		return fmt.Errorf("publish to kafka topic %q: %w", topic, err)
	}
	c.remaining.Store(int64(n))
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("publish to kafka topic %q: %w", topic, ErrClosed)
	}
	p.senders.Add(1)
	p.calls[c] = struct{}{}
	p.mu.Unlock()
	defer p.senders.Done()

	now := time.Now()
	ts := now.UnixMilli()
	err = p.prod.reserve(ctx, p.closing, size, func(w *wakeSet) { add(parts, ts, now, w) })
	if err != nil {
		c.abandon(n)
		if errors.Is(err, ErrClosed) {
			return fmt.Errorf("publish to kafka topic %q: %w", topic, ErrClosed)
		}
		return fmt.Errorf("publish to kafka topic %q: %d messages not enqueued: %w", topic, n, err)
	}
	return nil
}

// ackN counts n messages of the call as finished.
func (c *call) ackN(n int, err error) {
	if err != nil {
		c.errMu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.errMu.Unlock()
	}
	if c.remaining.Add(-int64(n)) == 0 {
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
		// Only a call that failed can have poisoned partitions.
		if err != nil && c.waited {
			c.p.prod.lift(c)
		}
		if !c.abandoned.Load() {
			c.done(err)
		}
		if err != nil && !c.waited {
			c.p.prod.lift(c)
		}
	})
}

// close stops intake, flushes what is in flight and stops the producer.
// When ctx ends first, the calls still waiting fail with ErrClosed.
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
	if err := p.prod.close(ctx); err == nil {
		return nil
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
// reads them, never writes, so sharing the string's memory is safe and
// saves a copy.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
