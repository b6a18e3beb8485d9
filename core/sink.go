package core

import (
	"context"
	"errors"
	"time"
)

// Sink is the contract between the runtime and a connector that delivers
// events from the stream to a system that must receive them (a REST
// endpoint, a table, a file drop, the audit log). It mirrors Source. The
// runtime drives one Sink value through these steps:
//
//	Configure -> Open -> Write (concurrently) -> Close -> Open -> ...
//
// Configure decodes and validates the sink's configuration, with no I/O,
// exactly once; it reports every problem at once, as *FieldError values.
//
// Open connects to the target. Like a Source, one value is reopened after
// Close (after an error, a pause, an operator's restart), so Open after
// Close starts afresh. An error from Open is retried with backoff unless
// it wraps ErrFatal.
//
// Write delivers deliveries, which are in stream order, and returns one
// Result per delivery, in the same order. Deliveries of one partition key
// appear in the order they must reach the target; the sink delivers them
// one after another and, once one of them does not get StatusDelivered,
// delivers none of the later ones of that key in the call (their results
// are StatusRetry with no error: the runtime sends them again, in order).
// Deliveries of different keys may go in parallel. The runtime calls Write
// concurrently, up to the sink's concurrency, but never with two calls
// holding the same key, except while an operator's replay runs: its calls
// (every Delivery.Replay set) keep their own per-key order beside the live
// ones, so a key may then be in a live call and a replay call at once. Write returns promptly once ctx is done, with
// StatusRetry for what it did not deliver. A delivery carries its event's
// id so that the target can drop duplicates: after a crash the runtime
// delivers again what was not committed, with the same ids.
//
// Close stops delivering and releases resources within ctx's deadline. It
// is safe to call twice and after a failed or partial Open.
type Sink interface {
	Configure(cfg Config) error
	Open(ctx context.Context, env Env) error
	Write(ctx context.Context, deliveries []Delivery) []Result
	Close(ctx context.Context) error
}

// Delivery is one event for a sink to deliver.
type Delivery struct {
	// Event is the event as it is on the stream. It must not be modified.
	Event *Event
	// Data is the event mapped by the sink's `map` expressions (the body
	// a legacy API takes, the row a table takes), or nil when the sink
	// maps nothing and delivers the event as it is.
	Data any
	// Attempt counts earlier deliveries of this event to this sink that
	// did not succeed: 0 on the first.
	Attempt int
	// Replay is true when an operator's replay delivers the event again.
	Replay bool
	// Position is where the event lies in the stream, as
	// "topic/partition/offset" (see MetadataPosition); empty when the
	// stream did not say (a replay from the audit log).
	Position string
}

// Status is the outcome of one delivery.
type Status uint8

// The outcomes of a delivery.
const (
	// StatusDelivered: the target took the event.
	StatusDelivered Status = iota
	// StatusRetry: not delivered now; deliver it again later, on the
	// sink's retry schedule (or after Result.RetryAfter).
	StatusRetry
	// StatusFailed: the target refused the event for good (a 4xx, a row
	// that breaks a constraint); it goes to the dead-letter topic with
	// Result.Err and Result.Response.
	StatusFailed
)

// String names the status as status and metrics show it.
func (s Status) String() string {
	switch s {
	case StatusDelivered:
		return "delivered"
	case StatusRetry:
		return "retry"
	case StatusFailed:
		return "failed"
	}
	return "unknown"
}

// Result is the outcome of one delivery.
type Result struct {
	Status Status
	// Err says why a delivery was not made (nil when delivered, and for
	// the later deliveries of a key that were not attempted).
	Err error
	// RetryAfter, when positive, is how long the target asked to wait (a
	// 429's or 503's Retry-After); it replaces the schedule's next delay.
	RetryAfter time.Duration
	// Response is what the target answered (a status line and the start
	// of the body), kept in status and dead letters. It must hold no
	// secret.
	Response string
}

// ErrSinkGone marks a Result error that says the target is gone for good
// (an HTTP 410): the runtime stops the sink (state failed) with that
// error, rather than retrying or dead-lettering every event.
var ErrSinkGone = errors.New("target gone")

// A ReportingSink tells the results of a Write's deliveries as they
// become known, rather than all at once when the Write returns. A sink
// that delivers the keys of a batch in parallel implements it, so that
// one slow key holds up only itself: the runtime hands every other key of
// the batch its next events as soon as that key's deliveries are done.
type ReportingSink interface {
	Sink
	// WriteReporting is Write that may call report, from any goroutine
	// and before it returns, with the result of the delivery at index i
	// of ds. A reported result is final: the entry at i of the returned
	// results is ignored. report must not be called after WriteReporting
	// returns.
	WriteReporting(ctx context.Context, ds []Delivery, report func(i int, r Result)) []Result
}

// WindowedSink is implemented by a sink that delivers best when the
// runtime holds more events of a topic or partition unacknowledged than
// its default (512): a sink that groups many Writes into one commit, such
// as the audit log, takes larger groups then. The window bounds the
// events the runtime holds per topic (embedded stream) or partition
// (Kafka) for the sink, so memory grows with it.
type WindowedSink interface {
	Sink
	// StreamWindow returns the window wanted; values below the default
	// are ignored.
	StreamWindow() int
}

// BatchingSink is implemented by a sink whose target takes a few large
// Writes best, such as a database where each Write is a transaction:
// when a sink's configuration leaves max_batch or concurrency out, the
// runtime takes the sink's WriteDefaults instead of its own (64 and 16).
type BatchingSink interface {
	Sink
	// WriteDefaults returns the most deliveries in one Write and the most
	// Writes at once the sink wants; a value below 1 leaves the runtime's
	// default. It is called once, after Configure.
	WriteDefaults() (maxBatch, concurrency int)
}

// SinkFunc adapts a function that delivers one event to a Sink with no
// configuration and no connection, delivering the deliveries of a call one
// after another. It suits simple sinks and tests.
type SinkFunc func(ctx context.Context, d Delivery) Result

// Configure accepts an empty configuration.
func (f SinkFunc) Configure(cfg Config) error { return cfg.Decode(&struct{}{}) }

// Open does nothing.
func (f SinkFunc) Open(context.Context, Env) error { return nil }

// Write calls f for each delivery, in order, skipping the later deliveries
// of a key once one of its deliveries was not delivered.
func (f SinkFunc) Write(ctx context.Context, ds []Delivery) []Result {
	out := make([]Result, len(ds))
	held := map[string]bool{}
	for i, d := range ds {
		key := d.Event.PartitionKey
		if held[key] || ctx.Err() != nil {
			out[i] = Result{Status: StatusRetry}
			continue
		}
		out[i] = f(ctx, d)
		if out[i].Status != StatusDelivered {
			held[key] = true
		}
	}
	return out
}

// Close does nothing.
func (f SinkFunc) Close(context.Context) error { return nil }

var _ Sink = SinkFunc(nil)

// SinkSpec registers a sink type.
type SinkSpec struct {
	// Type is the sink type ID used in YAML, lowercase snake_case naming
	// the technology: "http", "audit", "sql", "files".
	Type string
	// Summary is one sentence for listings.
	Summary string
	// Config is a zero value of the sink's typed configuration, a struct
	// whose fields declare its keys with tags (see FieldsOf).
	Config any
	// Fields is derived from Config at registration.
	Fields []Field
	// New returns an empty, unconfigured sink. It does no I/O.
	New func() Sink
}
