package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	goruntime "runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// Connector states shown in status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateRetrying = "retrying"
	StateFailed   = "failed"
	StateStopped  = "stopped"
	StateDisabled = "disabled"
)

// ConnectorStatus is one connector's state for /v1/connectors.
type ConnectorStatus struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Error is why the connector is retrying or failed; it is empty while
	// it runs.
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"error_time,omitzero"`
	// LastError is the most recent error of any stage, also one that was
	// retried without leaving the running state (a publish, an ack); it
	// is kept after recovery.
	LastError      string         `json:"last_error,omitempty"`
	LastErrorTime  time.Time      `json:"last_error_time,omitzero"`
	Retries        int            `json:"retries"`
	NextRetry      time.Time      `json:"next_retry,omitzero"`
	Restarts       int            `json:"restarts,omitempty"`
	Checkpoint     string         `json:"checkpoint,omitempty"`
	CheckpointTime time.Time      `json:"checkpoint_time,omitzero"`
	CaughtUp       time.Time      `json:"caught_up,omitzero"`
	ChangesRead    uint64         `json:"changes_read"`
	EventsEmitted  uint64         `json:"events_emitted"`
	DeadLettered   uint64         `json:"dead_lettered"`
	Errors         uint64         `json:"errors"`
	InFlight       int            `json:"in_flight"`
	Source         map[string]any `json:"source,omitempty"`
}

type connector struct {
	r   *Runtime
	cfg Connector
	log *slog.Logger

	mu        sync.Mutex
	state     string
	since     time.Time
	stateErr  string
	stateTime time.Time
	lastErr   string
	errTime   time.Time
	retries   int
	restarts  int
	nextRetry time.Time
	cpPos     core.Position
	cpTime    time.Time
	// restart is signalled by Restart; cancelSession ends the running
	// session.
	restart       chan struct{}
	cancelSession context.CancelFunc

	changesRead   atomic.Uint64
	eventsEmitted atomic.Uint64
	deadLettered  atomic.Uint64
	errCount      atomic.Uint64
	inFlight      atomic.Int64
	provisioned   bool
	// opened is set by the first successful Open: until then the
	// connector keeps the sidecar unready.
	opened atomic.Bool
}

func newConnector(r *Runtime, cfg Connector) *connector {
	return &connector{
		r:       r,
		cfg:     cfg,
		log:     r.log.With("connector", cfg.Name),
		state:   StateStarting,
		since:   time.Now(),
		restart: make(chan struct{}, 1),
	}
}

// setState moves the connector to state; err is why, for retrying and
// failed. Running clears the error: the connector recovered.
func (c *connector) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != state {
		c.state, c.since = state, time.Now()
	}
	switch {
	case err != nil:
		c.stateErr, c.stateTime = err.Error(), time.Now()
		c.lastErr, c.errTime = c.stateErr, c.stateTime
	case state == StateRunning || state == StateStopped || state == StateDisabled:
		c.stateErr, c.stateTime = "", time.Time{}
	}
	if state == StateRunning {
		c.nextRetry = time.Time{}
	}
	up := 0.0
	if state == StateRunning {
		up = 1
	}
	c.r.metrics.Up.WithLabelValues(c.cfg.Name).Set(up)
}

func (c *connector) recordError(stage string, err error) {
	c.errCount.Add(1)
	c.r.metrics.Errors.WithLabelValues(c.cfg.Name, stage).Inc()
	c.mu.Lock()
	c.lastErr, c.errTime = fmt.Sprintf("%s: %v", stage, err), time.Now()
	c.mu.Unlock()
}

func (c *connector) status() ConnectorStatus {
	c.mu.Lock()
	st := ConnectorStatus{
		Name: c.cfg.Name, Type: c.cfg.Type, State: c.state, Since: c.since,
		Error: c.stateErr, ErrorTime: c.stateTime, LastError: c.lastErr, LastErrorTime: c.errTime,
		Retries: c.retries, NextRetry: c.nextRetry, Restarts: c.restarts,
		CheckpointTime: c.cpTime,
	}
	if !c.cpPos.IsZero() {
		st.Checkpoint = c.cpPos.String()
	}
	c.mu.Unlock()
	st.ChangesRead = c.changesRead.Load()
	st.EventsEmitted = c.eventsEmitted.Load()
	st.DeadLettered = c.deadLettered.Load()
	st.Errors = c.errCount.Load()
	st.InFlight = int(c.inFlight.Load())
	if f, ok := c.cfg.Source.(core.Freshness); ok {
		st.CaughtUp = f.CaughtUp()
	}
	if sr, ok := c.cfg.Source.(core.StatusReporter); ok && st.State == StateRunning {
		st.Source = sr.Status()
	}
	return st
}

// freshness is when the connector last showed it had everything of its
// system: its last checkpoint, or, when nothing is in flight, the last
// time its source confirmed it had caught up (core.Freshness), so that a
// quiet source does not look stale.
func (c *connector) freshness() time.Time {
	c.mu.Lock()
	t := c.cpTime
	c.mu.Unlock()
	if f, ok := c.cfg.Source.(core.Freshness); ok && c.inFlight.Load() == 0 {
		if cu := f.CaughtUp(); cu.After(t) {
			t = cu
		}
	}
	return t
}

func (c *connector) updateGauges() {
	if t := c.freshness(); !t.IsZero() {
		c.r.metrics.CheckpointAge.WithLabelValues(c.cfg.Name).Set(time.Since(t).Seconds())
	}
	c.r.metrics.InFlight.WithLabelValues(c.cfg.Name).Set(float64(c.inFlight.Load()))
}

// Restart asks the connector to start a new session now: a running one
// drains and closes first, a retrying one skips its backoff, a failed one
// starts again.
func (c *connector) Restart() {
	c.mu.Lock()
	c.restarts++
	cancel := c.cancelSession
	c.mu.Unlock()
	select {
	case c.restart <- struct{}{}:
	default:
	}
	if cancel != nil {
		cancel()
	}
}

// supervise runs sessions until ctx is done. An error is retried with
// backoff; a fatal one leaves the connector failed until Restart.
func (c *connector) supervise(ctx context.Context) {
	attempt := 0
	for {
		// A restart asked for before this session starts is served by it.
		select {
		case <-c.restart:
		default:
		}
		sctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		c.cancelSession = cancel
		c.mu.Unlock()
		started := time.Now()
		err := c.session(sctx)
		c.mu.Lock()
		c.cancelSession = nil
		c.mu.Unlock()
		restarted := sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			c.setState(StateStopped, nil)
			c.log.Info("connector stopped")
			return
		}
		if restarted {
			c.log.Info("connector restarting on request")
			attempt = 0
			continue
		}
		if errors.Is(err, core.ErrFatal) {
			c.setState(StateFailed, err)
			c.log.Error("connector failed; it stays stopped until it is restarted (POST /v1/connectors/"+c.cfg.Name+"/restart) or the sidecar restarts", "err", err)
			select {
			case <-c.restart:
				c.log.Info("connector restarting on request")
				attempt = 0
				continue
			case <-ctx.Done():
				c.setState(StateStopped, nil)
				return
			}
		}
		if time.Since(started) > 2*c.cfg.Retry.Max {
			attempt = 0
		}
		d := c.cfg.Retry.Delay(attempt)
		attempt++
		var re *core.RetryError
		if errors.As(err, &re) && re.After > 0 {
			d = re.After
		}
		c.mu.Lock()
		c.retries++
		c.nextRetry = time.Now().Add(d)
		c.mu.Unlock()
		c.setState(StateRetrying, err)
		c.log.Warn("connector error, retrying", "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.restart:
			t.Stop()
			c.log.Info("connector restarting on request")
			attempt = 0
		case <-ctx.Done():
			t.Stop()
			c.setState(StateStopped, nil)
			return
		}
	}
}

// session opens the source from the last checkpoint and reads until an error
// or ctx is done, then drains and closes.
func (c *connector) session(ctx context.Context) (err error) {
	c.setState(StateStarting, nil)
	store := c.r.opts.Stream.Checkpoints()
	cp, ok, err := store.Load(ctx, c.cfg.Name)
	if err != nil {
		c.recordError("checkpoint", err)
		return fmt.Errorf("load checkpoint: %w", err)
	}
	var from core.Position
	if ok {
		from = cp.Position
		c.mu.Lock()
		c.cpPos, c.cpTime = cp.Position, cp.Time
		c.mu.Unlock()
	}
	env := core.Env{
		Name:       c.cfg.Name,
		ConfigPath: c.cfg.ConfigPath,
		Logger:     c.log,
		StateDir:   connectorStateDir(c.r.opts.StateDir, c.cfg.Name),
		HTTP:       c.r.opts.HTTP,
		Admin:      c.r.opts.Admin,
		Metrics:    c.r.opts.Registerer,
	}
	if env.StateDir != "" {
		if err := os.MkdirAll(env.StateDir, 0o755); err != nil {
			return core.Fatal(fmt.Errorf("create state directory: %w", err))
		}
	}
	src := c.cfg.Source
	if p, ok := src.(core.Provisioner); ok && !c.provisioned {
		if err := p.Provision(ctx, env); err != nil {
			c.recordError("provision", err)
			return fmt.Errorf("provision: %w", err)
		}
		c.provisioned = true
	}
	if err := src.Open(ctx, env, from); err != nil {
		c.recordError("open", err)
		cctx, cancel := c.r.drainContext()
		_ = src.Close(cctx)
		cancel()
		return fmt.Errorf("open from %s: %w", from, err)
	}
	c.log.Info("connector running", "from", from.String())
	c.opened.Store(true)
	c.setState(StateRunning, nil)

	s := newSession(c, src)
	readErr := s.readLoop(ctx)

	// Drain: let in-flight events reach the stream and commit them.
	dctx, cancel := c.r.drainContext()
	defer cancel()
	if !s.drain(dctx) {
		c.log.Warn("drain deadline reached; unacknowledged changes will be read again", "in_flight", s.tracker.Pending())
	}
	s.stop()
	if cerr := src.Close(dctx); cerr != nil {
		c.recordError("close", cerr)
	}
	if s.fatal.Load() != nil {
		return *s.fatal.Load()
	}
	if ctx.Err() != nil {
		return nil
	}
	if readErr != nil {
		c.recordError("read", readErr)
		return fmt.Errorf("read: %w", readErr)
	}
	return nil
}

// session is one Open..Close cycle of a source.
type session struct {
	c       *connector
	src     core.Source
	pub     asyncPublisher
	evPub   core.EventPublisher // the stream's, when it takes events as they are
	tracker *core.Tracker

	// pubCtx lives until the session's drain ends: publishes and their
	// retries stop with it.
	pubCtx    context.Context
	cancelPub context.CancelFunc
	failRead  context.CancelFunc

	mu       sync.Mutex
	cond     *sync.Cond
	mark     core.Position
	markSeq  uint64
	kick     chan struct{}
	commitWG sync.WaitGroup
	fatal    atomic.Pointer[error]
	// committedSeq is the markSeq of the last stored checkpoint.
	committedSeq uint64

	// sendMu is held while groups are handed to the stream, so that they
	// are enqueued in read order.
	sendMu sync.Mutex
	// pmu guards the publishing state below.
	pmu       sync.Mutex
	nextGroup uint64
	inflight  int      // groups handed to the stream and not answered
	trouble   bool     // a publish failed: new groups are held
	held      []*group // groups to publish again, then the ones held behind them, in read order
	paused    bool     // the last failure is waited out before pump resumes
	failures  int      // failures since publishing last went smoothly
	timer     bool     // pump is scheduled
	// epoch is the context groups are sent with. A failure cancels it;
	// pump starts the next.
	epoch       context.Context
	cancelEpoch context.CancelFunc
}

func newSession(c *connector, src core.Source) *session {
	s := &session{
		c:       c,
		src:     src,
		pub:     c.r.publisher(),
		tracker: core.NewTracker(),
		kick:    make(chan struct{}, 1),
	}
	s.evPub, _ = s.pub.(core.EventPublisher)
	s.cond = sync.NewCond(&s.mu)
	s.pubCtx, s.cancelPub = context.WithCancel(context.Background())
	s.epoch, s.cancelEpoch = context.WithCancel(s.pubCtx)
	s.commitWG.Go(s.commitLoop)
	return s
}

// readLoop reads batches on one goroutine and maps and publishes them on
// this one (mapping a large batch on every processor when the mapper
// allows), so that a source's decoding and the mapping overlap. Changes
// keep their read order through both.
func (s *session) readLoop(ctx context.Context) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.failRead = cancel
	s.mu.Unlock()
	batches := make(chan []core.Change, 4)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(batches)
		for {
			if err := s.waitCapacity(rctx); err != nil {
				return
			}
			batch, err := s.src.Read(rctx)
			if err != nil {
				if rctx.Err() == nil {
					readErr = err
				}
				return
			}
			// Count the batch in flight before mapping starts, so that
			// waitCapacity sees it.
			s.c.inFlight.Add(int64(len(batch)))
			select {
			case batches <- batch:
			case <-rctx.Done():
				s.c.inFlight.Add(-int64(len(batch)))
				return
			}
		}
	})
	for batch := range batches {
		s.c.changesRead.Add(uint64(len(batch)))
		s.c.r.metrics.ChangesRead.WithLabelValues(s.c.cfg.Name).Add(float64(len(batch)))
		s.handleBatch(batch)
	}
	wg.Wait()
	return readErr
}

// waitCapacity blocks while MaxInFlight changes are pending.
func (s *session) waitCapacity(ctx context.Context) error {
	if int(s.c.inFlight.Load()) < s.c.cfg.MaxInFlight {
		return nil
	}
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for int(s.c.inFlight.Load()) >= s.c.cfg.MaxInFlight {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.cond.Wait()
	}
	return nil
}

// maxGroup bounds the messages handed to the stream in one publish call.
const maxGroup = 1024

// pendingChange counts the messages a change still waits for.
type pendingChange struct {
	seq        uint64
	left       atomic.Int32
	commitTime time.Time
}

// group is one publish call: messages for one topic, from one or more
// consecutive changes, in read order.
type group struct {
	topic      string
	deadLetter bool
	msgs       []*message.Message
	// events holds the group's events instead of msgs when the stream
	// takes events as they are.
	events  []*core.Event
	changes []*pendingChange // the change of each message
	labels  []string         // event type, or dead-letter reason, of each message
	// outs is where each message came from, to dead-letter an event the
	// stream refuses.
	outs []outRef

	// seq orders groups in read order; sub orders the single-event
	// groups a refused group is split into.
	seq, sub uint64
	// attempts counts failed publishes of the group.
	attempts int
	// isolate groups are published alone, with nothing else in flight:
	// they are the events of a refused group, tried one by one to find
	// the refused ones.
	isolate bool
	start   time.Time
}

// outRef is the change, rule and event a message was built from.
type outRef struct {
	ch    *core.Change
	rule  string
	event *core.Event
}

// size is how many messages the group holds.
func (g *group) size() int { return len(g.msgs) + len(g.events) }

// handleBatch maps a batch of changes and hands their events to the stream,
// one publish call per topic (and per maxGroup messages) rather than per
// change, so that the stream sees large batches. Each change completes when
// its last message is durable.
func (s *session) handleBatch(batch []core.Change) {
	pcs := make([]pendingChange, len(batch))
	var order []*group
	open := map[string]*group{}
	flush := func(g *group) {
		delete(open, groupKey(g.topic, g.deadLetter))
		s.publishGroup(g)
	}
	get := func(topic string, dl bool) *group {
		k := groupKey(topic, dl)
		g := open[k]
		if g == nil {
			g = &group{topic: topic, deadLetter: dl}
			open[k] = g
			order = append(order, g)
		}
		return g
	}
	// Changes of a batch mostly share one event type, hence one topic.
	var lastType, topic string
	first := s.tracker.AddChanges(batch)
	outs := s.mapBatch(batch)
	var none []uint64 // changes that yield nothing, complete at once
	for i := range batch {
		ch := &batch[i]
		pc := &pcs[i]
		pc.seq = first + uint64(i)
		pc.commitTime = ch.Source.CommitTime
		n := 0
		for _, o := range outs[i] {
			if o.Err == nil && o.Event != nil {
				if o.Event.Type != lastType || topic == "" {
					lastType, topic = o.Event.Type, s.c.r.opts.Topics.For(o.Event.Type)
				}
				g := get(topic, false)
				if s.evPub != nil {
					g.events = append(g.events, o.Event)
				} else {
					g.msgs = append(g.msgs, o.Event.ToMessage())
				}
				g.changes = append(g.changes, pc)
				g.labels = append(g.labels, o.Event.Type)
				g.outs = append(g.outs, outRef{ch: ch, rule: o.Rule, event: o.Event})
				n++
				continue
			}
			msg, err := deadLetterMessage(s.c.cfg.Name, ch, o)
			if err != nil {
				s.fail(core.Fatal(fmt.Errorf("build dead-letter record for rule %q: %w", o.Rule, err)))
				return
			}
			reason := o.Reason
			if reason == "" {
				reason = ReasonRuleError
			}
			g := get(s.c.r.opts.DeadLetterTopic, true)
			g.msgs = append(g.msgs, msg)
			g.changes = append(g.changes, pc)
			g.labels = append(g.labels, reason)
			g.outs = append(g.outs, outRef{ch: ch, rule: o.Rule})
			n++
		}
		pc.left.Store(int32(n))
		if n == 0 {
			none = append(none, pc.seq)
		}
		// Flush full groups between changes, never in the middle of one,
		// so that a change's count is set before any of its acks arrive.
		for _, g := range order {
			if g.size() >= maxGroup && open[groupKey(g.topic, g.deadLetter)] == g {
				flush(g)
			}
		}
	}
	for _, g := range order {
		if open[groupKey(g.topic, g.deadLetter)] == g {
			flush(g)
		}
	}
	if len(none) > 0 {
		s.complete(none)
	}
}

// parallelMapMin is the smallest batch mapped on more than one goroutine.
const parallelMapMin = 256

// mapBatch maps every change of batch, in order. A mapper safe for
// concurrent use maps a large batch in parts, one per processor, while
// the source reads the next batch on another goroutine.
func (s *session) mapBatch(batch []core.Change) [][]Output {
	outs := make([][]Output, len(batch))
	m := s.c.cfg.Mapper
	parts := min(goruntime.GOMAXPROCS(0), len(batch)/(parallelMapMin/2))
	if _, ok := m.(concurrentMapper); !ok || parts < 2 {
		for i := range batch {
			outs[i] = m.Map(&batch[i])
		}
		return outs
	}
	var wg sync.WaitGroup
	size := (len(batch) + parts - 1) / parts
	for lo := size; lo < len(batch); lo += size {
		hi := min(lo+size, len(batch))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				outs[i] = m.Map(&batch[i])
			}
		})
	}
	for i := range size {
		outs[i] = m.Map(&batch[i])
	}
	wg.Wait()
	return outs
}

func groupKey(topic string, dl bool) string {
	if dl {
		return "\x00dl\x00" + topic
	}
	return topic
}

// publishGroup hands g to the stream in read order, or holds it back
// behind groups that are being published again.
func (s *session) publishGroup(g *group) {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.pmu.Lock()
	g.seq = s.nextGroup
	s.nextGroup++
	if s.trouble {
		s.hold(g)
		s.pmu.Unlock()
		return
	}
	s.inflight++
	ctx := s.epoch
	s.pmu.Unlock()
	s.send(ctx, g)
}

// send hands g to the stream under ctx, the epoch it was sent in; the
// caller holds sendMu and has counted g in flight.
func (s *session) send(ctx context.Context, g *group) {
	if g.start.IsZero() {
		g.start = time.Now()
	}
	finish := func(err error) { s.finished(g, err) }
	var err error
	if len(g.events) > 0 {
		err = s.evPub.PublishEvents(ctx, g.topic, g.events, finish)
	} else {
		err = s.pub.PublishAsync(ctx, g.topic, g.msgs, finish)
	}
	if err == nil {
		return
	}
	switch {
	case s.pubCtx.Err() != nil:
		// The session is ending: the group's changes stay uncommitted
		// and are read again after the next Open.
		s.pmu.Lock()
		s.inflight--
		s.pmu.Unlock()
	case ctx.Err() != nil:
		// A failure ended the epoch before the stream took g: it waits
		// behind the failed groups.
		s.pmu.Lock()
		s.inflight--
		s.hold(g)
		s.resume()
		s.pmu.Unlock()
	default:
		s.finished(g, err)
	}
}

// hold queues g, in read order, to be published by pump. Called with pmu
// held.
func (s *session) hold(g *group) {
	i := sort.Search(len(s.held), func(i int) bool {
		h := s.held[i]
		return h.seq > g.seq || h.seq == g.seq && h.sub > g.sub
	})
	s.held = slices.Insert(s.held, i, g)
}

// finished is the stream's answer for g. A failure holds back every later
// group until the failed ones are published again, in read order, so that
// no event overtakes an earlier one of its key (the stream fails the later
// messages of a key it had already taken; see core.AsyncPublisher).
func (s *session) finished(g *group, err error) {
	if err == nil {
		s.c.r.streamOK.Store(time.Now().UnixNano())
		s.c.r.metrics.PublishLatency.WithLabelValues(s.c.cfg.Name).Observe(time.Since(g.start).Seconds())
		s.delivered(g)
		s.pmu.Lock()
		s.inflight--
		s.resume()
		s.pmu.Unlock()
		return
	}
	stage := "publish"
	if g.deadLetter {
		stage = "dead_letter"
	}
	s.c.recordError(stage, fmt.Errorf("topic %q: %w", g.topic, err))
	s.pmu.Lock()
	defer s.pmu.Unlock()
	// End the epoch before this returns: the stream fails what it takes
	// until then, and refuses what comes after (core.AsyncPublisher), so
	// nothing sent without knowing of this failure is stored ahead of it.
	s.endEpoch()
	s.inflight--
	g.attempts++
	s.trouble = true
	switch {
	case errors.Is(err, core.ErrPermanent) && g.deadLetter:
		s.fail(core.Fatal(fmt.Errorf("the stream refused a record for dead-letter topic %q, stopping rather than losing it: %w", g.topic, err)))
		return
	case errors.Is(err, core.ErrPermanent) && s.c.cfg.OnPublishError == OnPublishErrorStop:
		s.fail(core.Fatal(fmt.Errorf("the stream refused an event for topic %q (on_publish_error: stop): %w", g.topic, err)))
		return
	case errors.Is(err, core.ErrPermanent) && g.size() > 1:
		// One or more of the events is refused: try them one by one.
		for i := range g.size() {
			one := &group{
				topic: g.topic, changes: g.changes[i : i+1], labels: g.labels[i : i+1], outs: g.outs[i : i+1],
				seq: g.seq, sub: g.sub*uint64(maxGroup) + uint64(i), isolate: true,
			}
			if len(g.events) > 0 {
				one.events = g.events[i : i+1]
			} else {
				one.msgs = g.msgs[i : i+1]
			}
			s.hold(one)
		}
	case errors.Is(err, core.ErrPermanent):
		dl, derr := s.refused(g, err)
		if derr != nil {
			s.fail(core.Fatal(derr))
			return
		}
		s.hold(dl)
	default:
		if g.deadLetter && g.attempts >= deadLetterAttempts {
			s.fail(core.Fatal(fmt.Errorf("write to dead-letter topic %q failed %d times, stopping rather than losing the record: %w", g.topic, g.attempts, err)))
			return
		}
		s.hold(g)
		s.paused = true
		s.failures++
	}
	s.resume()
}

// refused turns the one event of g, which the stream refused for good, into
// a dead-letter group in its place.
func (s *session) refused(g *group, err error) (*group, error) {
	ref := g.outs[0]
	o := Output{Rule: ref.rule, Event: ref.event, Err: err, Reason: ReasonPublishRefused}
	if ref.event != nil {
		o.Data = json.RawMessage(ref.event.Data)
		if !json.Valid(ref.event.Data) {
			o.Data = string(ref.event.Data)
		}
	}
	msg, derr := deadLetterMessage(s.c.cfg.Name, ref.ch, o)
	if derr != nil {
		return nil, fmt.Errorf("build dead-letter record for an event the stream refused: %w", derr)
	}
	s.c.log.Warn("the stream refused an event; it goes to the dead-letter topic", "topic", g.topic, "err", err)
	return &group{
		topic: s.c.r.opts.DeadLetterTopic, deadLetter: true, msgs: []*message.Message{msg},
		changes: g.changes, labels: []string{ReasonPublishRefused}, outs: g.outs,
		seq: g.seq, sub: g.sub,
	}, nil
}

// endEpoch cancels the context of the groups sent since the last pump.
// Called with pmu held.
func (s *session) endEpoch() {
	if s.cancelEpoch != nil {
		s.cancelEpoch()
	}
}

// resume schedules pump once nothing is in flight: after a backoff when the
// last failure was one to wait out, at once otherwise. Called with pmu held.
func (s *session) resume() {
	if !s.trouble || s.inflight > 0 || s.timer {
		return
	}
	var d time.Duration
	if s.paused {
		d = s.c.cfg.Retry.Delay(s.failures - 1)
	}
	s.timer = true
	time.AfterFunc(d, func() {
		if s.pubCtx.Err() == nil {
			s.pump()
		}
	})
}

// pump publishes the held groups again, in read order. An isolated group
// goes alone, and the rest waits for its answer; a new failure pauses the
// pump until resume calls it again.
func (s *session) pump() {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.pmu.Lock()
	s.timer, s.paused = false, false
	s.endEpoch()
	s.epoch, s.cancelEpoch = context.WithCancel(s.pubCtx)
	ctx := s.epoch
	s.pmu.Unlock()
	for {
		s.pmu.Lock()
		if s.paused || ctx.Err() != nil {
			s.pmu.Unlock()
			return
		}
		if len(s.held) == 0 {
			s.trouble, s.failures = false, 0
			s.pmu.Unlock()
			return
		}
		g := s.held[0]
		if g.isolate && s.inflight > 0 {
			s.pmu.Unlock()
			return
		}
		s.held = s.held[1:]
		s.inflight++
		s.pmu.Unlock()
		s.send(ctx, g)
		if g.isolate {
			return
		}
	}
}

// delivered completes g's changes once g is durable.
func (s *session) delivered(g *group) {
	counts := map[string]int{}
	for _, l := range g.labels {
		counts[l]++
	}
	for l, n := range counts {
		if g.deadLetter {
			s.c.r.metrics.DeadLettered.WithLabelValues(s.c.cfg.Name, l).Add(float64(n))
		} else {
			s.c.r.metrics.EventsEmitted.WithLabelValues(s.c.cfg.Name, l).Add(float64(n))
		}
	}
	if g.deadLetter {
		s.c.deadLettered.Add(uint64(g.size()))
	} else {
		s.c.eventsEmitted.Add(uint64(g.size()))
	}
	var lag prometheus.Observer
	now := time.Now()
	seqs := make([]uint64, 0, len(g.changes))
	for _, pc := range g.changes {
		if pc.left.Add(-1) == 0 {
			if !pc.commitTime.IsZero() {
				if lag == nil {
					lag = s.c.r.metrics.CommitLatency.WithLabelValues(s.c.cfg.Name)
				}
				lag.Observe(now.Sub(pc.commitTime).Seconds())
			}
			seqs = append(seqs, pc.seq)
		}
	}
	s.complete(seqs)
}

// deadLetterAttempts bounds retries of a dead-letter write before the
// connector stops: the change is then read again after a restart, never
// lost.
const deadLetterAttempts = 8

// complete marks the changes seqs durable and wakes the committer when the
// watermark moved.
func (s *session) complete(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	pos, advanced := s.tracker.DoneAll(seqs)
	s.c.inFlight.Add(-int64(len(seqs)))
	s.mu.Lock()
	if advanced {
		s.mark = pos
		s.markSeq++
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if advanced {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// fail stops the session with a fatal error.
func (s *session) fail(err error) {
	if s.fatal.CompareAndSwap(nil, &err) {
		s.c.log.Error("connector stopping", "err", err)
		s.mu.Lock()
		cancel := s.failRead
		s.cond.Broadcast() // a drain in progress stops waiting
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	}
}

// commitLoop stores the watermark as the checkpoint, then acks the source,
// coalescing advances that arrive while a save is in progress.
func (s *session) commitLoop() {
	for {
		select {
		case <-s.kick:
		case <-s.pubCtx.Done():
			return
		}
		s.commit(s.pubCtx)
	}
}

func (s *session) commit(ctx context.Context) {
	s.mu.Lock()
	pos, seq := s.mark, s.markSeq
	s.mu.Unlock()
	if seq == s.committedSeq {
		return
	}
	cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: s.c.cfg.Name, Position: pos, Time: time.Now().UTC()}
	for n := 0; ; n++ {
		err := s.c.r.opts.Stream.Checkpoints().Save(ctx, cp)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.c.recordError("checkpoint", err)
		select {
		case <-time.After(s.c.cfg.Retry.Delay(n)):
		case <-ctx.Done():
			return
		}
	}
	s.committedSeq = seq
	s.c.r.streamOK.Store(time.Now().UnixNano())
	s.c.mu.Lock()
	s.c.cpPos, s.c.cpTime = cp.Position, cp.Time
	s.c.mu.Unlock()
	if err := s.src.Ack(ctx, pos); err != nil && ctx.Err() == nil {
		s.c.recordError("ack", err)
		s.c.log.Warn("source ack failed; the next ack covers it", "err", err)
	}
}

// drain waits until every read change is committed or ctx is done. It
// reports whether everything drained.
func (s *session) drain(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for s.tracker.Pending() > 0 && ctx.Err() == nil && s.fatal.Load() == nil {
		s.cond.Wait()
	}
	s.mu.Unlock()
	drained := s.tracker.Pending() == 0
	// Stop the background committer, then commit what is left from here,
	// so that no Ack runs after Close.
	s.cancelPub()
	s.commitWG.Wait()
	if ctx.Err() == nil {
		s.commit(ctx)
	}
	return drained
}

// stop ends publishing and committing; it is called after drain.
func (s *session) stop() {
	s.cancelPub()
	s.commitWG.Wait()
	s.c.inFlight.Store(0)
}
