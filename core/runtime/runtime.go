package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tributary/tributary/core"
)

// Topics routes events to stream topics.
type Topics struct {
	// Mode is "per_type" (topic = Prefix + event type) or "single"
	// (every event on Name).
	Mode   string
	Prefix string
	Name   string
}

// For returns the topic of an event type.
func (t Topics) For(eventType string) string {
	if t.Mode == "single" {
		return t.Name
	}
	return t.Prefix + eventType
}

// Connector is one configured connector instance.
type Connector struct {
	Name string
	Type string
	// Source is configured (Configure succeeded) and not yet opened.
	Source core.Source
	Mapper Mapper
	Retry  Backoff
	// MaxInFlight bounds the changes read but not yet committed; Read is
	// not called again while it is reached. Default: the source's
	// DefaultMaxInFlight() when it declares one, else 10000.
	MaxInFlight int
	// Disabled connectors are listed in status but never started.
	Disabled bool
	// ConfigPath is where the connector's configuration sits in the file,
	// such as "connectors[2].config"; see core.Env.ConfigPath.
	ConfigPath string
	// OnPublishError says what happens to an event the stream refuses for
	// good (core.ErrPermanent): OnPublishErrorDeadLetter (the default)
	// or OnPublishErrorStop.
	OnPublishError string
}

// What a connector does with an event the stream refuses for good.
const (
	// OnPublishErrorDeadLetter writes the refused event to the
	// dead-letter topic, with the stream's reason, and moves on.
	OnPublishErrorDeadLetter = "dead_letter"
	// OnPublishErrorStop stops the connector (state failed) before the
	// refused event; its checkpoint stays behind it.
	OnPublishErrorStop = "stop"
)

// Options configures a Runtime.
type Options struct {
	// Stream is configured and not yet opened; the runtime opens it,
	// retrying with StreamRetry until it answers.
	Stream      core.Stream
	StreamRetry Backoff
	Topics      Topics
	// DeadLetterTopic receives every output that failed its rule or its
	// schema. Default "tributary.deadletter".
	DeadLetterTopic string
	Connectors      []Connector
	// Sinks deliver events from the stream to the systems that must
	// receive them.
	Sinks []Sink
	// EventTypes are the known event types (the catalog's): with topics
	// per type, a sink reads the topics of those its globs match.
	EventTypes []string
	// StateDir holds per-connector state directories.
	StateDir string
	// HTTP is the shared listener's router, or nil when there is none.
	HTTP core.Router
	// Admin is the admin listener's router for connectors' operator
	// endpoints, or nil.
	Admin core.Router
	// Registerer receives the runtime's and connectors' metrics; nil
	// disables them.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ShutdownTimeout bounds draining and closing once Run's context is
	// cancelled. Default 30s.
	ShutdownTimeout time.Duration
	// DrainTimeout bounds draining after a connector's source fails and
	// before it is reopened. Default 30s.
	DrainTimeout time.Duration
	// TracerProvider, when set, traces every change: a span per change
	// with one per stage (read, map, validate, publish, ack), and the
	// publish span's context on every event as its traceparent. Nil
	// traces nothing, at no cost.
	TracerProvider trace.TracerProvider
	// PingInterval is how often the stream's health is checked. A publish
	// or checkpoint save that succeeded within the interval counts as the
	// check; the stream is pinged only when there was none. Default 5s.
	PingInterval time.Duration
}

// Runtime runs connectors against one stream.
type Runtime struct {
	opts Options
	log  *slog.Logger
	// tracer is nil when nothing is traced.
	tracer     trace.Tracer
	metrics    *Metrics
	connectors []*connector
	sinks      []*sinkRunner

	// streamOK is when a publish or checkpoint save last succeeded (unix
	// nanoseconds): proof that the stream answers, which spares a ping.
	streamOK atomic.Int64

	mu          sync.Mutex
	streamState string
	streamErr   string
	streamReady bool
	shutdownCtx context.Context
	started     bool

	// updates carries Apply's calls to Run's loop, which starts and
	// stops connectors and sinks; loopDone is closed when that loop ends.
	updates  chan updateCall
	loopDone chan struct{}
	// sinkM holds the sinks' collectors, once there is a sink.
	sinkM *sinkMetrics
}

// defaultMaxInFlight bounds the changes in flight of a connector whose
// source declares no bound of its own.
const defaultMaxInFlight = 10000

// inFlightDefaulter is a source declaring the max_in_flight its type needs
// when none is set (config.InFlightDefaulter): a CDC source, whose changes
// in flight hold decoded rows, bounds its catch-up's memory with it.
type inFlightDefaulter interface{ DefaultMaxInFlight() int }

// prepareConnector checks c and fills its defaults.
func prepareConnector(c Connector) (Connector, error) {
	if c.Name == "" || c.Source == nil || c.Mapper == nil {
		return c, fmt.Errorf("runtime: connector %q: name, source and mapper are required", c.Name)
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = defaultMaxInFlight
		if d, ok := c.Source.(inFlightDefaulter); ok && d.DefaultMaxInFlight() > 0 {
			c.MaxInFlight = d.DefaultMaxInFlight()
		}
	}
	switch c.OnPublishError {
	case "":
		c.OnPublishError = OnPublishErrorDeadLetter
	case OnPublishErrorDeadLetter, OnPublishErrorStop:
	default:
		return c, fmt.Errorf("runtime: connector %q: on_publish_error %q is not one of %q, %q", c.Name, c.OnPublishError, OnPublishErrorDeadLetter, OnPublishErrorStop)
	}
	c.Retry = c.Retry.withDefaults()
	return c, nil
}

// New checks opts and returns a runtime. It does no I/O.
func New(opts Options) (*Runtime, error) {
	if opts.Stream == nil {
		return nil, errors.New("runtime: no stream")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DeadLetterTopic == "" {
		opts.DeadLetterTopic = "tributary.deadletter"
	}
	if opts.Topics.Mode == "" {
		opts.Topics.Mode = "per_type"
	}
	if opts.Topics.Mode == "single" && opts.Topics.Name == "" {
		opts.Topics.Name = "tributary.events"
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 5 * time.Second
	}
	if opts.StreamRetry.Initial <= 0 {
		opts.StreamRetry = Backoff{Initial: 500 * time.Millisecond, Max: 30 * time.Second}
	}
	r := &Runtime{opts: opts, log: opts.Logger, metrics: NewMetrics(opts.Registerer), streamState: "starting", updates: make(chan updateCall), loopDone: make(chan struct{})}
	seen := map[string]bool{}
	for _, c := range opts.Connectors {
		c, err := prepareConnector(c)
		if err != nil {
			return nil, err
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("runtime: connector %q defined twice", c.Name)
		}
		seen[c.Name] = true
		r.connectors = append(r.connectors, newConnector(r, c))
	}
	if opts.TracerProvider != nil {
		r.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	sinks, err := newSinkRunners(r, opts)
	if err != nil {
		return nil, err
	}
	r.sinks = sinks
	return r, nil
}

// Run opens the stream, starts every enabled connector, and blocks until ctx
// is cancelled; then it shuts down within Options.ShutdownTimeout. It
// returns nil after a clean shutdown. Run may be called once.
func (r *Runtime) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("runtime: Run called twice")
	}
	r.started = true
	r.mu.Unlock()

	if err := os.MkdirAll(r.opts.StateDir, 0o755); err != nil && r.opts.StateDir != "" {
		return fmt.Errorf("create state directory %s: %w", r.opts.StateDir, err)
	}
	if !r.openStream(ctx) {
		close(r.loopDone)
		return r.shutdown(nil)
	}
	pingCtx, stopPing := context.WithCancel(context.Background())
	var pingWG sync.WaitGroup
	pingWG.Go(func() { r.pingLoop(pingCtx) })

	var wg sync.WaitGroup
	for _, c := range r.connectorList() {
		r.startConnector(ctx, &wg, c)
	}
	for _, s := range r.sinkList() {
		r.startSink(ctx, &wg, s)
	}
	r.updateLoop(ctx, &wg)
	r.log.Info("shutting down", "timeout", r.opts.ShutdownTimeout)
	err := r.shutdown(func(sctx context.Context) {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			r.log.Error("connectors did not stop before the shutdown deadline")
		}
	})
	stopPing()
	pingWG.Wait()
	return err
}

// shutdown sets the shutdown deadline, runs wait (connectors draining), and
// closes the stream.
func (r *Runtime) shutdown(wait func(context.Context)) error {
	sctx, cancel := context.WithTimeout(context.Background(), r.opts.ShutdownTimeout)
	defer cancel()
	r.mu.Lock()
	r.shutdownCtx = sctx
	r.mu.Unlock()
	if wait != nil {
		wait(sctx)
	}
	if err := r.opts.Stream.Close(sctx); err != nil {
		return fmt.Errorf("close stream: %w", err)
	}
	if err := sctx.Err(); err != nil {
		return fmt.Errorf("shutdown: deadline of %s exceeded", r.opts.ShutdownTimeout)
	}
	return nil
}

// drainContext bounds a connector's drain: the shutdown deadline once
// shutdown has begun, DrainTimeout otherwise.
func (r *Runtime) drainContext() (context.Context, context.CancelFunc) {
	r.mu.Lock()
	sctx := r.shutdownCtx
	r.mu.Unlock()
	if sctx != nil {
		return context.WithCancel(sctx)
	}
	return context.WithTimeout(context.Background(), r.opts.DrainTimeout)
}

// openStream opens the stream, retrying until it succeeds or ctx is done.
func (r *Runtime) openStream(ctx context.Context) bool {
	env := core.Env{
		Name:     "stream",
		Logger:   r.log.With("component", "stream"),
		StateDir: r.opts.StateDir,
		Metrics:  r.opts.Registerer,
	}
	for attempt := 0; ; attempt++ {
		err := r.opts.Stream.Open(ctx, env)
		if err == nil {
			r.setStream("running", nil, true)
			r.log.Info("stream open")
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, core.ErrFatal) {
			r.setStream("failed", err, false)
			r.log.Error("stream failed", "err", err)
			<-ctx.Done()
			return false
		}
		_ = r.opts.Stream.Close(ctx)
		d := r.opts.StreamRetry.Delay(attempt)
		r.setStream("retrying", err, false)
		r.log.Warn("stream not available, retrying", "err", err, "in", d.Round(time.Millisecond))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return false
		}
	}
}

// pingLoop checks the stream's health every PingInterval. A publish or
// checkpoint save that succeeded within the interval proves the stream
// answers, and then no ping is sent: a ping is not free for the traffic
// it would compete with (Kafka's asks the broker for every topic's
// metadata, a request that the produce requests behind it on the
// connection wait for).
func (r *Runtime) pingLoop(ctx context.Context) {
	t := time.NewTicker(r.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, r.streamOK.Load())) < r.opts.PingInterval {
			r.setStream("running", nil, true)
		} else {
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := r.opts.Stream.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				r.setStream("unreachable", err, false)
			} else {
				r.setStream("running", nil, true)
			}
		}
		for _, c := range r.connectorList() {
			c.updateGauges()
		}
	}
}

func (r *Runtime) setStream(state string, err error, ready bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.streamState, r.streamReady = state, ready
	r.streamErr = ""
	if err != nil {
		r.streamErr = err.Error()
	}
}

// StreamStatus is the stream's state in Status.
type StreamStatus struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// Status is a snapshot of the runtime for /v1/connectors.
type Status struct {
	// Ready is what /readyz answers: the stream is open and answers,
	// every enabled connector has opened since the sidecar started, and
	// none has failed. A connector that ran and is now retrying a
	// transient error keeps the sidecar ready: it recovers by itself, and
	// a load balancer taking the sidecar out and back in with every retry
	// would only add churn. It is listed with its state and error.
	Ready      bool              `json:"ready"`
	Stream     StreamStatus      `json:"stream"`
	Connectors []ConnectorStatus `json:"connectors"`
	// Sinks is every sink's state; sinks do not count in Ready.
	Sinks []SinkStatus `json:"sinks,omitempty"`
}

// Status returns a snapshot of the stream's and every connector's state.
func (r *Runtime) Status() Status {
	r.mu.Lock()
	st := Status{Stream: StreamStatus{State: r.streamState, Error: r.streamErr}}
	streamReady := r.streamReady
	r.mu.Unlock()
	ready := streamReady
	for _, c := range r.connectorList() {
		cs := c.status()
		if cs.State == StateFailed || !c.cfg.Disabled && !c.opened.Load() {
			ready = false
		}
		st.Connectors = append(st.Connectors, cs)
	}
	st.Ready = ready
	st.Sinks = r.sinkStatuses()
	return st
}

// Ready reports whether the stream answers, every enabled connector has
// opened since the start and none has failed.
func (r *Runtime) Ready() bool { return r.Status().Ready }

// ErrNoConnector is returned by Restart for a name no connector has.
var ErrNoConnector = errors.New("no such connector")

// Restart starts the named connector's source again without restarting the
// sidecar: a running connector drains, closes and reopens from its
// checkpoint; a retrying one skips the rest of its backoff; a failed one
// starts again. The configuration is the one loaded at start. A disabled
// connector cannot be restarted.
func (r *Runtime) Restart(name string) error {
	for _, c := range r.connectorList() {
		if c.cfg.Name != name {
			continue
		}
		if c.cfg.Disabled {
			return fmt.Errorf("connector %q is disabled in the configuration", name)
		}
		c.Restart()
		return nil
	}
	return fmt.Errorf("%w named %q", ErrNoConnector, name)
}

// connectorList returns the connectors, in configuration order.
func (r *Runtime) connectorList() []*connector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connectors
}

// sinkList returns the sinks, in configuration order.
func (r *Runtime) sinkList() []*sinkRunner {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sinks
}

// Metrics returns the runtime's collectors.
func (r *Runtime) Metrics() *Metrics { return r.metrics }

func (r *Runtime) publisher() asyncPublisher {
	p := r.opts.Stream.Publisher()
	if ap, ok := p.(core.AsyncPublisher); ok {
		return ap
	}
	return newSyncAdapter(p)
}

type asyncPublisher = core.AsyncPublisher

// syncAdapter runs a plain watermill publisher asynchronously with the
// ordering contract of core.AsyncPublisher: one publish call at a time per
// topic, in the order they were enqueued, and a failure fails every call
// queued behind it on its topic, and every call made before its done
// returns, so that nothing overtakes it. Topics publish concurrently, a
// bounded number of calls at a time.
type syncAdapter struct {
	p   message.Publisher
	sem chan struct{}

	mu     sync.Mutex
	topics map[string]*topicQueue
}

type topicQueue struct {
	calls   []syncCall
	running bool
	// failed is the error being reported while done runs for a failed
	// call; calls made meanwhile fail with it.
	failed error
}

type syncCall struct {
	msgs []*message.Message
	done func(error)
}

func newSyncAdapter(p message.Publisher) *syncAdapter {
	return &syncAdapter{p: p, sem: make(chan struct{}, 64), topics: map[string]*topicQueue{}}
}

func (a *syncAdapter) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		<-a.sem
		return err
	}
	q := a.topics[topic]
	if q == nil {
		q = &topicQueue{}
		a.topics[topic] = q
	}
	if q.failed != nil {
		err := q.failed
		go func() {
			<-a.sem
			done(err)
		}()
		return nil
	}
	q.calls = append(q.calls, syncCall{msgs: msgs, done: done})
	if !q.running {
		q.running = true
		go a.run(topic, q)
	}
	return nil
}

// run publishes topic's queued calls one at a time until the queue is
// empty.
func (a *syncAdapter) run(topic string, q *topicQueue) {
	for {
		a.mu.Lock()
		if len(q.calls) == 0 {
			q.running = false
			delete(a.topics, topic)
			a.mu.Unlock()
			return
		}
		c := q.calls[0]
		q.calls = q.calls[1:]
		a.mu.Unlock()
		err := a.p.Publish(topic, c.msgs...)
		if err == nil {
			<-a.sem
			c.done(nil)
			continue
		}
		// What was queued behind the failed call, and what is called
		// until its done returns, fails too.
		a.mu.Lock()
		behind := q.calls
		q.calls = nil
		q.failed = fmt.Errorf("an earlier publish to topic %q failed: %w", topic, err)
		a.mu.Unlock()
		<-a.sem
		c.done(err)
		for _, b := range behind {
			<-a.sem
			b.done(q.failed)
		}
		a.mu.Lock()
		q.failed = nil
		a.mu.Unlock()
	}
}

func connectorStateDir(base, name string) string {
	if base == "" {
		return ""
	}
	return filepath.Join(base, "connectors", name)
}
