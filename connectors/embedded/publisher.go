package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Publisher publishes to the embedded stream. Publish returns once every
// message is durable; PublishAsync lets many publishes share one
// transaction and one fsync (group commit). Messages of one topic are stored,
// and delivered, in the order they were enqueued.
//
// Closing a Publisher waits for its pending publishes and refuses new ones;
// the stream itself stays open until Stream.Close. A Publisher is safe for
// concurrent use.
type Publisher struct {
	st *store

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

var (
	_ message.Publisher   = (*Publisher)(nil)
	_ core.AsyncPublisher = (*Publisher)(nil)
	_ core.EventPublisher = (*Publisher)(nil)
)

// Publish stores msgs on topic and returns once they are durable, or with
// the error that prevented it. The messages are written in one
// transaction: all or none.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	errc := make(chan error, 1)
	if err := p.enqueue(context.Background(), topic, len(msgs), func(err error) { errc <- err }, true, p.messageRows(topic, msgs)); err != nil {
		return err
	}
	return <-errc
}

// PublishAsync enqueues msgs for topic and returns. It blocks only while the
// writer's queue is full, no longer than ctx allows. When it returns nil,
// done is called exactly once, from the writer goroutine, after the
// messages are durable (nil) or failed to be written (every message of msgs
// shares one transaction). done must not block. A message larger than the
// stream stores fails its call, none of whose messages is written, with an
// error wrapping core.ErrPermanent. A failed publish fails every publish
// to its topic enqueued before its done returns, as core.AsyncPublisher
// requires (see ordering.go); with ctx done, nothing is enqueued.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	return p.enqueue(ctx, topic, len(msgs), done, false, p.messageRows(topic, msgs))
}

// messageRows returns the function that appends the rows of msgs.
func (p *Publisher) messageRows(topic string, msgs []*message.Message) func([]row) []row {
	return func(rows []row) []row {
		// The metadata is encoded now, every message's into one buffer
		// sized for them all; the payload is copied into its batch by the
		// writer, before done is called.
		need := 0
		for _, m := range msgs {
			need += metadataSize(m.Metadata)
		}
		md := make([]byte, 0, need)
		for _, m := range msgs {
			r := row{topic: topic, uuid: m.UUID, payload: m.Payload, metadata: emptyMetadata}
			if len(m.Metadata) > 0 {
				start := len(md)
				md = appendMetadata(md, m.Metadata)
				r.metadata = md[start:len(md):len(md)]
			}
			rows = append(rows, r)
		}
		return rows
	}
}

// PublishEvents publishes events as PublishAsync publishes their ToMessage
// forms, without building the messages: each event's attributes are
// encoded straight into the stored metadata.
func (p *Publisher) PublishEvents(ctx context.Context, topic string, events []*core.Event, done func(error)) error {
	return p.enqueue(ctx, topic, len(events), done, false, func(rows []row) []row {
		// One buffer holds every event's metadata: it is sized for the
		// longest each can be, so that no row's metadata moves.
		need := 0
		for _, e := range events {
			need += eventMetadataMax(e)
		}
		md := make([]byte, 0, need)
		for _, e := range events {
			start := len(md)
			md = appendEventMetadata(md, e)
			rows = append(rows, row{topic: topic, uuid: e.ID, payload: e.Data, metadata: md[start:len(md):len(md)]})
		}
		return rows
	})
}

// enqueue hands n messages, whose rows build appends, to the writer.
// waited: the caller waits for done (see op).
func (p *Publisher) enqueue(ctx context.Context, topic string, n int, done func(error), waited bool, build func([]row) []row) error {
	if topic == "" {
		return errors.New("publish: empty topic; name the topic to publish to")
	}
	if p.st == nil {
		return fmt.Errorf("publish to topic %q: %w", topic, ErrNotOpen)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("publish to topic %q: %w", topic, ErrClosed)
	}
	p.inflight.Add(1)
	p.mu.Unlock()

	if n == 0 {
		p.inflight.Done()
		done(nil)
		return nil
	}
	o := &op{pub: p, pubDone: done, waited: waited}
	o.rows = o.one[:0]
	if n > 1 {
		o.rows = make([]row, 0, n)
	}
	o.rows = build(o.rows)
	for i := range o.rows {
		if size := frameSize(&o.rows[i]); size > maxFrameBytes {
			o.refused = tooLargeError(o.rows[i].uuid, size)
			break
		}
	}
	if err := p.st.enqueue(ctx, o); err != nil {
		p.inflight.Done()
		return fmt.Errorf("publish to topic %q: %w", topic, err)
	}
	return nil
}

// finish reports the outcome of o, a publish, to its caller.
func (p *Publisher) finish(o *op, err error) {
	if err != nil {
		err = fmt.Errorf("publish %d messages to topic %q: %w", len(o.rows), o.rows[0].topic, err)
	}
	o.pubDone(err)
	p.inflight.Done()
}

// Close refuses further publishes and waits for the pending ones. It is
// safe to call twice.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	return nil
}
