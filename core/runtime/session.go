package runtime

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
)

// This file is one session of a connector: Open from the last checkpoint,
// the read loop, then drain and Close. batch.go maps what it reads into
// publish groups, publish.go hands them to the stream, and commit.go stores
// the checkpoint behind them.

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
	setPayloadPaths(src, c.cfg.Mapper)
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
	// added is how many changes the tracker was given.
	added atomic.Uint64

	// Tracing only (tracing.go): markCovered is acks.covered for mark;
	// open holds the traced changes whose events are not all stored.
	markCovered uint64
	acks        ackTraces
	traceMu     sync.Mutex
	open        map[*changeTrace]struct{}

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

	// The connector's metrics, looked up once rather than by their
	// labels for every batch and group.
	changesRead    prometheus.Counter
	publishLatency prometheus.Observer
	commitLatency  prometheus.Observer
	counters       sync.Map // counterKey -> prometheus.Counter

	// lastType and lastTopic are the event type handleBatch last found
	// the topic of, and that topic: a connector's changes mostly share
	// one event type. The read loop's only.
	lastType, lastTopic string
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
	m, name := c.r.metrics, c.cfg.Name
	s.changesRead = m.ChangesRead.WithLabelValues(name)
	s.publishLatency = m.PublishLatency.WithLabelValues(name)
	s.commitLatency = m.CommitLatency.WithLabelValues(name)
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
	type readBatch struct {
		changes []core.Change
		timing  readTiming
	}
	tracing := s.c.r.tracer != nil
	batches := make(chan readBatch, 4)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(batches)
		for {
			if err := s.waitCapacity(rctx); err != nil {
				return
			}
			var rt readTiming
			if tracing {
				rt.start = time.Now()
			}
			batch, err := s.src.Read(rctx)
			if tracing {
				rt.end = time.Now()
			}
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
			case batches <- readBatch{batch, rt}:
			case <-rctx.Done():
				s.c.inFlight.Add(-int64(len(batch)))
				return
			}
		}
	})
	for b := range batches {
		s.c.changesRead.Add(uint64(len(b.changes)))
		s.changesRead.Add(float64(len(b.changes)))
		s.handleBatch(b.changes, b.timing)
	}
	wg.Wait()
	if readErr == nil && ctx.Err() != nil {
		s.drainSource()
	}
	return readErr
}

// drainSource hands on, on a clean stop, what a core.Drainer source
// accepted and Read did not return, so that the drain that follows
// publishes it and acknowledges it to the source.
func (s *session) drainSource() {
	d, ok := s.src.(core.Drainer)
	if !ok || s.fatal.Load() != nil {
		return
	}
	dctx, cancel := s.c.r.drainContext()
	defer cancel()
	batch, err := d.Drain(dctx)
	if err != nil {
		s.c.log.Warn("source not drained: what it accepted is read again at the next start", "err", err)
	}
	if len(batch) == 0 {
		return
	}
	s.c.log.Info("publishing what the source accepted before the stop", "changes", len(batch))
	s.c.inFlight.Add(int64(len(batch)))
	s.c.changesRead.Add(uint64(len(batch)))
	s.changesRead.Add(float64(len(batch)))
	s.handleBatch(batch, readTiming{})
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

// stop ends publishing and committing; it is called after drain.
func (s *session) stop() {
	s.cancelPub()
	s.commitWG.Wait()
	s.c.inFlight.Store(0)
	if s.c.r.tracer != nil {
		s.abandonTraces()
	}
}
