package poll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// ErrClosed is returned by a Source used after Close.
var ErrClosed = errors.New("poll source closed")

// item is what the run loop hands Read: a batch or the run's error.
type item struct {
	batch []core.Change
	err   error
}

// Source is a polling source: it runs a Fetcher on a schedule and turns
// its records into changes. It implements core.Source except Configure,
// which belongs to the connector that builds it.
type Source struct {
	cfg   Config
	sched Schedule
	now   func() time.Time

	// ackMu serialises acknowledgements and run completions, which
	// commit to the state in FIFO order.
	ackMu sync.Mutex
	// seenWritten counts the seen entries written since the last prune.
	// Guarded by ackMu.
	seenWritten int

	mu     sync.Mutex
	log    *slog.Logger
	st     *state
	out    chan item
	cancel context.CancelFunc
	done   chan struct{}
	fifo   []pending
	head   int
	seen   map[[16]byte]cval
	// seenMax is at or above the cursor of every seen entry.
	seenMax    cval
	hasSeenMax bool
	mark       cval
	hasMark    bool
	ackMark    cval // highest acknowledged cursor
	hasAck     bool
	overlay    map[string]*overlayEntry
	marks      bitset
	runSeq     int64
	running    bool
	after      string

	// modeAny is the mode as a Meta value. runMeta is the Meta of the
	// changes of the run at runAt whose records bring no Meta of their
	// own: changes are read-only, so they share it. Guarded by mu.
	modeAny any
	runMeta map[string]any
	runAt   time.Time
	// posArena holds the changes' positions. Guarded by mu.
	posArena arena

	lastRun   time.Time
	nextRun   time.Time
	lastError string
	runs      atomic.Int64
	emitted   atomic.Int64
	// caughtUp is when the last successful run finished, in Unix
	// nanoseconds; 0 before the first. It outlives Close, like the
	// series: the runtime reopens the same Source.
	caughtUp atomic.Int64
	// met are the connector's series, kept across reopens. Guarded by mu.
	met *metrics
}

// NewSource validates cfg and returns an unopened Source. It does no I/O.
func NewSource(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sched, _ := ParseSchedule(cfg.Schedule, cfg.TimeZone)
	if cfg.CatchUp == "" {
		cfg.CatchUp = CatchUpOne
	}
	if cfg.MaxCatchUp <= 0 {
		cfg.MaxCatchUp = DefaultMaxCatchUp
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = DefaultTombstoneTTL
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Source{cfg: cfg, sched: sched, now: now, modeAny: string(cfg.Mode)}, nil
}

// Open opens the local state in env.StateDir (in memory when it is empty),
// restores the watermark from `from` and starts the schedule. A zero from
// resets the local state.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != nil {
		return errors.New("poll source opened twice without Close")
	}
	s.log = env.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.registerLocked(env)
	st, err := openState(ctx, env.StateDir)
	if err != nil {
		return err
	}
	s.st = st
	fail := func(err error) error {
		st.close()
		s.st = nil
		return err
	}
	mode, _, err := st.meta(ctx, metaMode)
	if err != nil {
		return fail(err)
	}
	if from.IsZero() || (mode != "" && mode != string(s.cfg.Mode)) {
		if err := st.reset(ctx); err != nil {
			return fail(err)
		}
	}
	if err := st.setMeta(ctx, metaMode, string(s.cfg.Mode)); err != nil {
		return fail(err)
	}
	s.fifo, s.head = nil, 0
	s.mark, s.hasMark, s.ackMark, s.hasAck = cval{}, false, cval{}, false
	s.after = ""
	s.overlay = map[string]*overlayEntry{}
	s.seen = map[[16]byte]cval{}
	s.seenMax, s.hasSeenMax = cval{}, false
	switch s.cfg.Mode {
	case ModeCursor:
		if err := s.restoreMark(ctx, from); err != nil {
			return fail(err)
		}
	case ModeEach:
		s.after = string(from.Data)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.out = make(chan item, s.cfg.Buffer)
	s.done = make(chan struct{})
	started, err := st.metaInt(ctx, metaStarted)
	if err != nil {
		return fail(err)
	}
	doneNS, err := st.metaInt(ctx, metaDone)
	if err != nil {
		return fail(err)
	}
	go s.loop(loopCtx, s.met, started, doneNS)
	return nil
}

// register makes sure the connector's series exist, before anything can
// fail: a connector that cannot connect shows a last success of 0 rather
// than no series.
func (s *Source) register(env core.Env) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registerLocked(env)
}

// registerLocked is register for callers holding mu. Series of an
// earlier Open of the same connector are kept.
func (s *Source) registerLocked(env core.Env) {
	if s.met != nil && s.met.reg == env.Metrics && s.met.name == env.Name {
		return
	}
	met, err := newMetrics(env.Metrics, env.Name)
	if err != nil && env.Logger != nil {
		env.Logger.Warn("poll metrics are not exported", "err", err)
	}
	s.met = met
}

// Read returns the next page of changes, blocking until one is ready. It
// returns a run's error once the changes read before it are returned.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	out := s.out
	s.mu.Unlock()
	if out == nil {
		return nil, ErrClosed
	}
	select {
	case it, ok := <-out:
		if !ok {
			return nil, ErrClosed
		}
		if it.err != nil {
			return nil, it.err
		}
		return it.batch, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops the schedule, waits for a run in progress to stop and closes
// the local state. It is safe to call twice and before Open; the Source
// may be opened again afterwards.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("close poll source: run still stopping: %w", ctx.Err())
		}
	}
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel, s.done, s.out = nil, nil, nil
	s.fifo, s.head = nil, 0
	s.overlay, s.seen, s.marks = nil, nil, nil
	if s.st != nil {
		err := s.st.close()
		s.st = nil
		if err != nil {
			return fmt.Errorf("close poll source: %w", err)
		}
	}
	return nil
}

// Status reports the schedule and the changes waiting for acknowledgement.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := map[string]any{
		"mode":     string(s.cfg.Mode),
		"schedule": s.cfg.Schedule,
		"runs":     s.runs.Load(),
		"changes":  s.emitted.Load(),
		"unacked":  len(s.fifo) - s.head,
	}
	if !s.lastRun.IsZero() {
		st["last_run"] = s.lastRun
	}
	if !s.nextRun.IsZero() {
		st["next_run"] = s.nextRun
	}
	if t := s.CaughtUp(); !t.IsZero() {
		st["last_success"] = t
	}
	if s.lastError != "" {
		st["last_error"] = s.lastError
	}
	if s.cfg.Mode == ModeCursor && s.hasMark {
		st["watermark"] = s.mark.value(s.cfg.Cursor)
	}
	return st
}

// Health returns nil while the source is open.
func (s *Source) Health(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil {
		return ErrClosed
	}
	return nil
}

func (s *Source) setError(err error) {
	s.mu.Lock()
	s.lastError = err.Error()
	s.mu.Unlock()
}

// CaughtUp returns when the last successful run finished: every record
// the system held when it ran had been handed to Read. It is the zero time
// before the first. It implements core.Freshness: on a quiet system the
// checkpoint stays put while runs keep confirming that nothing is new.
func (s *Source) CaughtUp() time.Time {
	if ns := s.caughtUp.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

var (
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
	_ core.Freshness      = (*Source)(nil)
)
