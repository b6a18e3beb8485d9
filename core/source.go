package core

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is the contract between the runtime and a connector that notices
// changes in a system. The runtime drives one Source value through these
// steps, in order:
//
//	Configure -> Open -> Read/Ack (concurrently) -> Close
//	          -> Open -> Read/Ack -> Close -> ...
//
// The runtime keeps that one value for the connector's whole life: after an
// error, an outage or an operator's restart it calls Open again on the same
// value, after Close, from the last committed checkpoint. Open after Close
// must therefore start afresh (new connections, new goroutines), and
// whatever the value keeps across sessions (a cached token, a registered
// metric) must be safe to reuse. The conformance kit reopens one value the
// same way.
//
// Configure decodes and validates the connector's configuration. It does no
// I/O and is called exactly once, before Open. It returns every problem it
// finds at once, joined with errors.Join; a *FieldError per problem lets the
// config loader point at the offending line.
//
// Open connects to the system and prepares to read the changes after from.
// A zero from means no checkpoint exists: the source starts as its
// configuration says (a snapshot, the current end, the oldest file). Open may
// block until ctx is done; ctx bounds the call, not the connection's life.
// An error from Open is retried with backoff unless it wraps ErrFatal; the
// runtime calls Close after a failed Open before trying again.
//
// Errors follow one policy for every connector. An error that may pass by
// itself (a refused connection, a timeout, a 5xx or 429 answer, a database
// restarting) is returned plain: the runtime closes, backs off (doubling
// up to the connector's retry.max, or a RetryError's delay) and reopens,
// forever, with the connector shown as retrying. An error that only a
// person can fix (rejected credentials, a missing table or permission, a
// configuration the system refuses, a checkpoint the system no longer has)
// wraps ErrFatal: the connector stops as failed, with the error and what
// to do in its status, until an operator restarts it
// (POST /v1/connectors/{name}/restart on the admin listener) or the
// sidecar restarts. Other connectors keep running either way.
//
// Read blocks until at least one change is available and returns the changes
// in source order, each with its own position. It returns ctx.Err() promptly
// once ctx is done. Read is never called concurrently with itself. An error
// wrapping ErrFatal stops the connector; any other error makes the runtime
// close, back off and reopen from the last committed checkpoint.
//
// Ack tells the source that the change at pos and every change read before
// it are durable on the stream and their checkpoint is stored: the source may
// now release them (advance a replication slot, answer a webhook sender, move
// a file). Acks arrive in read order, one call may cover many changes, and
// Ack may run concurrently with Read. No Ack arrives after Close starts.
// Ack must not block for long; an error from Ack is logged and counted and
// the next Ack covers the same ground again.
//
// Close stops intake, releases resources and returns within ctx's deadline.
// It is safe to call twice and after a failed or partial Open. Changes read
// but not acked when Close is called are read again after the next Open.
type Source interface {
	Configure(cfg Config) error
	Open(ctx context.Context, env Env, from Position) error
	Read(ctx context.Context) ([]Change, error)
	Ack(ctx context.Context, pos Position) error
	Close(ctx context.Context) error
}

// Env is what the runtime lends a source when it opens it. Nothing in it
// outlives the source's Close.
type Env struct {
	// Name is the connector instance's name from the configuration.
	Name string
	// ConfigPath is where the connector's own configuration sits in the
	// configuration file, such as "connectors[2].config", for errors found
	// only when the source opens (a plugin's verdict on its settings):
	// core.PrefixFieldErrors(env.ConfigPath, err) points them at the
	// right key. It is empty when the source was not configured from a
	// file.
	ConfigPath string
	// Logger is the connector's logger, already tagged with its name.
	Logger *slog.Logger
	// StateDir is a directory private to this connector instance, for local
	// state (diff indexes, inboxes). It exists when Open is called.
	StateDir string
	// HTTP mounts handlers on the sidecar's shared HTTP listener, for
	// connectors that receive pushes. It is nil when the sidecar runs no
	// listener.
	HTTP Router
	// Admin mounts operator endpoints on the sidecar's admin listener
	// (such as an on-demand re-snapshot). A connector mounts only below
	// "/v1/connectors/<Name>/", for example
	// "POST /v1/connectors/orders/snapshot". It is nil when the sidecar
	// runs no admin listener.
	Admin Router
	// Metrics registers connector-specific collectors. Collectors should
	// carry a "connector" label set to Name.
	Metrics prometheus.Registerer
}

// Router mounts HTTP handlers on a shared listener.
type Router interface {
	// Handle serves h at the exact path pattern (net/http ServeMux syntax,
	// such as "POST /hooks/orders"). The returned function unmounts it.
	Handle(pattern string, h http.Handler) (unmount func(), err error)
}

// Provisioner is an optional Source capability for one-time set-up that is
// separate from every run's Open: creating a replication slot, registering a
// webhook subscription, installing a trigger table. The runtime calls
// Provision once before the first Open of a process; it must be idempotent.
type Provisioner interface {
	Provision(ctx context.Context, env Env) error
}

// HealthChecker is an optional Source capability. Health returns nil when the
// source can read from its system. It must return within ctx's deadline and
// may be called concurrently with everything else.
type HealthChecker interface {
	Health(ctx context.Context) error
}

// StatusReporter is an optional Source capability: details that appear in
// the connector's status (slot lag, last poll, queue depth). It may be
// called concurrently with everything else and must not block.
type StatusReporter interface {
	Status() map[string]any
}

// SourceFunc adapts a plain read function to a Source that needs no
// configuration, no connection and no acknowledgement. It suits simple
// generators and tests.
type SourceFunc func(ctx context.Context) ([]Change, error)

// Configure accepts an empty configuration.
func (f SourceFunc) Configure(cfg Config) error { return cfg.Decode(&struct{}{}) }

// Open does nothing.
func (f SourceFunc) Open(context.Context, Env, Position) error { return nil }

// Read calls f.
func (f SourceFunc) Read(ctx context.Context) ([]Change, error) { return f(ctx) }

// Ack does nothing.
func (f SourceFunc) Ack(context.Context, Position) error { return nil }

// Close does nothing.
func (f SourceFunc) Close(context.Context) error { return nil }

var _ Source = SourceFunc(nil)

// Ingress is an optional Source capability for sources that receive pushes.
// Routes returns the patterns (net/http ServeMux syntax, as given to
// Env.HTTP.Handle) the source mounts once open. It is called after a
// successful Configure and does no I/O. The sidecar answers those routes
// with 503 and Retry-After from the moment its listener is up until the
// source mounts them, so that a sender retries instead of taking a 404.
type Ingress interface {
	Routes() []string
}

// Freshness is an optional Source capability. CaughtUp returns when the
// source last confirmed that it had read everything its system held (a poll
// that finished, a replication keepalive with nothing pending), or the zero
// time if it has not. On a quiet system the checkpoint does not move; the
// runtime then reports the age of this confirmation instead, so that a
// healthy idle source does not look stale. It may be called concurrently
// with everything else and must not block.
type Freshness interface {
	CaughtUp() time.Time
}

// Drainer is an optional Source capability for sources that answer their
// system before the runtime reads a change: a webhook answers 2xx once a
// delivery is in its durable inbox. On a clean stop, once Read has
// returned, the runtime calls Drain: the source stops accepting changes (a
// webhook answers 503 from then on, so senders retry) and returns those it
// accepted that Read did not return. The runtime publishes them and
// acknowledges them through Ack before it calls Close, within the drain
// deadline (ctx), so that a stopped sidecar leaves nothing it answered for
// behind; what a failed Drain leaves stays with the source, read at the
// next Open. Drain is not called concurrently with Read.
type Drainer interface {
	Drain(ctx context.Context) ([]Change, error)
}

// PayloadPath is a path of object fields into a change's Payload, such as
// ["order", "id"] for payload.order.id, that a connector's rules read.
type PayloadPath struct {
	Fields []string
	// LenOnly says the rules read only len() of the value: an array's
	// elements, unlike its count, need not be built.
	LenOnly bool
}

// PayloadPruner is an optional Source capability: the source may build
// only the parts of each Change.Payload that paths reach (still checking
// the whole body), set Change.PayloadPruned on such changes, and keep the
// whole body in Change.Raw. all says the mapper reads the payload in ways
// paths do not describe: the source then builds whole payloads. The
// runtime calls SetPayloadPaths before every Open, from the mapper the
// connector is built with (a reloaded connector is a new source); it is
// not called concurrently with Read.
type PayloadPruner interface {
	SetPayloadPaths(paths []PayloadPath, all bool)
}
