package core

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Stream is the shared stream events go to: Kafka in production, the
// embedded durable stream by default. Its publisher and subscribers are
// watermill's, and every implementation passes watermill's universal Pub/Sub
// test suite.
//
// The runtime calls Configure once (no I/O), then Open, then uses
// Publisher, Subscriber and Checkpoints concurrently, then Close. Publisher,
// Subscriber and Checkpoints are only valid between a successful Open and
// Close.
//
// A broker that is down at start is not fatal: after a failed Open the
// runtime calls Close (which releases whatever the failed Open acquired) and
// calls Open again on the same value after a backoff, until it succeeds.
// Open after Close therefore starts afresh: a stream never stays closed for
// good because an earlier Open failed.
type Stream interface {
	Configure(cfg Config) error
	Open(ctx context.Context, env Env) error
	// Publisher returns the stream's publisher. Its Publish returns once
	// every message is durably stored (for Kafka: acknowledged by all
	// in-sync replicas). It usually also implements AsyncPublisher.
	Publisher() message.Publisher
	// Subscriber returns a new subscriber reading as opts say. The caller
	// closes it.
	Subscriber(opts SubscribeOptions) (message.Subscriber, error)
	// Checkpoints returns the store where source checkpoints live, beside
	// the events.
	Checkpoints() CheckpointStore
	// Ping returns nil when the stream answers. It bounds itself by ctx.
	Ping(ctx context.Context) error
	// Close flushes pending publishes (bounded by ctx), then releases
	// everything. It is safe to call twice.
	Close(ctx context.Context) error
}

// AsyncPublisher is an optional capability of a stream's publisher:
// publishing without waiting, so that a publisher can batch many events into
// one write (one fsync, one Kafka produce request).
//
// PublishAsync enqueues msgs for topic and returns. It blocks only while the
// publisher's buffer is full, and then no longer than ctx allows. When it
// returns nil, done is called exactly once, from any goroutine, after every
// message in msgs is durable (err == nil) or after one of them failed. When
// it returns an error (ctx done, publisher closed) nothing was enqueued and
// done is never called. Messages enqueued on one topic with the same key are
// stored in the order they were enqueued, and a failure never lets a later
// message overtake an earlier one: when a message fails, every message with
// the same key enqueued on the topic before its done returned fails too
// (Kafka's idempotent producer behaves so within a partition). The runtime
// relies on this to keep per-key order across retries: it holds back new
// publishes from the moment it sees a failure and sends the failed ones
// again, in order. An error that retrying cannot fix (a record the broker
// refuses for its size or content) wraps ErrPermanent. It is safe for
// concurrent use.
type AsyncPublisher interface {
	PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error
}

// EventPublisher is an optional capability of a stream's publisher:
// publishing events as they are, without a watermill message built for
// each. The stream stores each event exactly as it stores its ToMessage
// form (the same UUID, metadata and payload), so that no subscriber can
// tell which way it was published. Otherwise the contract is
// AsyncPublisher's. The events are not modified and must not be modified
// until done is called.
type EventPublisher interface {
	PublishEvents(ctx context.Context, topic string, events []*Event, done func(error)) error
}

// TopicsSubscriber is an optional capability of a subscriber with a
// group: subscribing to several topics at once, as one member of the group.
// A consumer of several topics (a sink) then joins its group once, with
// every topic, rather than once a topic: on Kafka each join rebalances the
// whole group, and topics joined one after another start reading seconds
// apart. The channels are those Subscribe would return, one a topic, all
// closed when ctx ends or the subscriber is closed.
type TopicsSubscriber interface {
	SubscribeTopics(ctx context.Context, topics []string) (map[string]<-chan *message.Message, error)
}

// StartFrom says where a new subscription without committed offsets starts.
type StartFrom int

// Where a subscription starts.
const (
	FromEnd       StartFrom = iota // only messages published from now on
	FromBeginning                  // everything still retained
	FromTime                       // messages published at or after SubscribeOptions.Since
)

// SubscribeOptions configures a subscriber.
type SubscribeOptions struct {
	// Group is the consumer group. Subscribers sharing a group share the
	// work and its committed offsets. An empty group reads without
	// committing: every subscription starts at From.
	Group string
	// From applies when the group has no committed offsets.
	From StartFrom
	// Since is the start time for FromTime.
	Since time.Time
	// Window, when above 1, lets up to Window messages of a partition (of
	// a topic, on the embedded stream) be delivered before the first of
	// them is acked, so that a consumer can work on several at once (a
	// sink delivering different keys in parallel). Acks may then come in
	// any order; the group's committed offset only ever advances to just
	// past the longest run of acked messages from the start (the low
	// watermark), so a crash delivers again everything not acked, never
	// skips. A nacked message is delivered again, and so are those after
	// it that were delivered but not acked. 0 or 1 keeps watermill's
	// default: the next message only after the previous is acked.
	Window int
}

// CheckpointStore keeps each connector's last committed position, beside the
// events it covers.
type CheckpointStore interface {
	// Load returns the connector's checkpoint. ok is false when there is
	// none.
	Load(ctx context.Context, connector string) (cp Checkpoint, ok bool, err error)
	// Save stores cp durably before returning. Saves for one connector come
	// from one goroutine, in order.
	Save(ctx context.Context, cp Checkpoint) error
}

// CheckpointFormat is the version of the checkpoint encoding. Formats only
// grow by adding fields; every released format is frozen as a golden file.
const CheckpointFormat = 1

// Checkpoint is a connector's committed position.
type Checkpoint struct {
	// Format is the encoding version, CheckpointFormat when written.
	Format    int      `json:"format"`
	Connector string   `json:"connector"`
	Position  Position `json:"position"`
	// Time is when the checkpoint was committed.
	Time time.Time `json:"time"`
}
