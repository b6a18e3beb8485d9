package poll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// ErrClosed is returned by a Source used after Close.
var ErrClosed = errors.New("poll source closed")

// seenPruneEvery is how many seen entries are written between two
// deletes of the entries below the look-back window.
const seenPruneEvery = 16384

// Defaults of Config.
const (
	DefaultMaxCatchUp   = 100
	DefaultTombstoneTTL = 30 * 24 * time.Hour
	DefaultBuffer       = 4
)

// Config configures a Source.
type Config struct {
	// Schedule is a cron expression or "@every <duration>"; see
	// ParseSchedule.
	Schedule string
	// TimeZone is the IANA zone cron expressions are evaluated in; "" is
	// UTC.
	TimeZone string
	// Jitter delays each run by a random duration below it, spreading the
	// load of many connectors on one schedule. Run times stay the
	// scheduled ones.
	Jitter time.Duration
	// CatchUp is CatchUpOne (the default) or CatchUpAll.
	CatchUp string
	// MaxCatchUp bounds the runs CatchUpAll makes up for; older missed
	// times are dropped. Default DefaultMaxCatchUp.
	MaxCatchUp int
	// Mode is the change-detection mode.
	Mode Mode
	// Cursor is the watermark type in cursor mode.
	Cursor CursorKind
	// LookBack is how far below the watermark each cursor-mode run reads
	// again, for timestamp cursors.
	LookBack time.Duration
	// LookBackCount is the same for integer cursors: how many ids below
	// the watermark are read again.
	LookBackCount int64
	// TombstoneTTL is how long snapshot mode remembers a deleted key's
	// version, so that a key deleted and created again gets new positions.
	// Default DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// Fetcher reads the records.
	Fetcher Fetcher
	// Source is the SourceInfo of every change; records may override
	// fields.
	Source core.SourceInfo
	// Buffer is how many pages may wait for Read. Default DefaultBuffer.
	Buffer int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if _, err := ParseSchedule(c.Schedule, ""); err != nil {
		errs = append(errs, core.FieldErrorf("schedule", "%v", err))
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			errs = append(errs, core.FieldErrorf("time_zone", "%q is not a known time zone: use an IANA name such as Europe/Paris", c.TimeZone))
		}
	}
	switch c.CatchUp {
	case "", CatchUpOne, CatchUpAll:
	default:
		errs = append(errs, core.FieldErrorf("catch_up", "%q is not one of one, all", c.CatchUp))
	}
	if c.Jitter < 0 {
		errs = append(errs, core.FieldErrorf("jitter", "%s is negative", c.Jitter))
	}
	switch c.Mode {
	case ModeCursor:
		switch c.Cursor {
		case CursorTime, CursorInt, CursorString:
		default:
			errs = append(errs, core.FieldErrorf("cursor.type", "%q is not one of timestamp, integer, string", c.Cursor))
		}
		if c.LookBack < 0 || c.LookBackCount < 0 {
			errs = append(errs, core.FieldErrorf("cursor.look_back", "is negative"))
		}
	case ModeSnapshot, ModeEach:
	default:
		errs = append(errs, core.FieldErrorf("mode", "%q is not one of cursor, snapshot", c.Mode))
	}
	if c.Fetcher == nil {
		errs = append(errs, errors.New("poll source needs a Fetcher"))
	}
	return errors.Join(errs...)
}

// pendingKind tells FIFO entries apart.
const (
	entryChange = iota
	entryRunEnd
)

// pending is a change emitted and not yet acknowledged, with what its
// acknowledgement makes durable.
type pending struct {
	kind int
	pos  []byte // shared with the change's Position.Data
	// cursor mode
	id [16]byte
	c  cval
	// snapshot mode
	key  string
	hash []byte // nil for a delete
	ver  int64
	// each mode
	done func(ctx context.Context) error
	// run end
	runNS int64
}

// overlayEntry is a snapshot-mode key whose newest state is not committed.
type overlayEntry struct {
	hash    []byte
	ver     int64
	refs    int
	seenRun int64
}

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

// restoreMark sets the watermark to the higher of the acknowledged one in
// the local state and the cursor of the checkpoint, and loads the seen set
// of the look-back window below it.
func (s *Source) restoreMark(ctx context.Context, from core.Position) error {
	kind := s.cfg.Cursor
	if v, ok, err := s.st.meta(ctx, metaMark); err != nil {
		return err
	} else if ok {
		if kind == CursorString {
			s.mark = cval{s: v}
		} else {
			n, _ := strconv.ParseInt(v, 10, 64)
			s.mark = cval{i: n}
		}
		s.hasMark = true
	}
	if !from.IsZero() {
		c, err := decodeCursorPos(from, kind)
		if err != nil {
			return core.Fatal(fmt.Errorf("checkpoint %s is not a cursor-mode position of a %s cursor (reset the connector's checkpoint to start over): %w", from, kind, err))
		}
		if !s.hasMark || s.mark.less(c, kind) {
			s.mark, s.hasMark = c, true
		}
	}
	s.ackMark, s.hasAck = s.mark, s.hasMark
	if !s.hasMark {
		return nil
	}
	seen, err := s.st.loadSeen(ctx, kind, s.lowerBound(s.mark))
	if err != nil {
		return err
	}
	s.seen = seen
	for _, c := range seen {
		if !s.hasSeenMax || s.seenMax.less(c, kind) {
			s.seenMax, s.hasSeenMax = c, true
		}
	}
	return nil
}

func (s *Source) lowerBound(c cval) cval {
	return c.minus(s.cfg.Cursor, s.cfg.LookBack, s.cfg.LookBackCount)
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

// Ack makes durable what the changes up to pos, and every change before
// them, imply: seen entries and the watermark, index entries, completed
// runs, processed files. A position this Source did not read is ignored.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.st == nil {
		s.mu.Unlock()
		return nil
	}
	found := -1
	for j := s.head; j < len(s.fifo); j++ {
		if s.fifo[j].kind == entryChange && bytes.Equal(s.fifo[j].pos, pos.Data) {
			found = j
			break
		}
	}
	if found < 0 {
		s.mu.Unlock()
		return nil
	}
	end := found + 1
	for end < len(s.fifo) && s.fifo[end].kind == entryRunEnd {
		end++
	}
	entries := s.fifo[s.head:end]
	st := s.st
	s.mu.Unlock()
	return s.apply(ctx, st, entries, end)
}

// apply commits entries (the FIFO from head to end) and pops them.
// Callers hold ackMu.
func (s *Source) apply(ctx context.Context, st *state, entries []pending, end int) error {
	kind := s.cfg.Cursor
	b := commitBatch{kind: kind}
	var dones []func(context.Context) error
	mark, hasMark := s.ackMark, s.hasAck
	for i := range entries {
		e := &entries[i]
		switch {
		case e.kind == entryRunEnd:
			b.doneNS = e.runNS
		case s.cfg.Mode == ModeCursor:
			if !hasMark || mark.less(e.c, kind) {
				mark, hasMark = e.c, true
			}
		case s.cfg.Mode == ModeSnapshot:
			if e.hash == nil {
				b.goneKeys = append(b.goneKeys, e.key)
				b.goneVer = append(b.goneVer, e.ver)
			} else {
				b.upsertKeys = append(b.upsertKeys, e.key)
				b.upsertHash = append(b.upsertHash, e.hash)
				b.upsertVer = append(b.upsertVer, e.ver)
			}
		case s.cfg.Mode == ModeEach:
			if e.done != nil {
				dones = append(dones, e.done)
			}
		}
	}
	if s.cfg.Mode == ModeCursor && hasMark {
		lower := s.lowerBound(mark)
		for i := range entries {
			e := &entries[i]
			if e.kind == entryChange && !e.c.less(lower, kind) {
				b.seenIDs = append(b.seenIDs, e.id)
				b.seenCs = append(b.seenCs, e.c)
			}
		}
		b.mark, b.hasMark = mark, true
		// Entries below the window are ignored when the set is loaded, so
		// they are deleted in bulk rather than on every acknowledgement.
		s.seenWritten += len(b.seenIDs)
		if s.seenWritten >= seenPruneEvery {
			b.prune, b.hasPrune = lower, true
		}
	}
	b.goneNS = s.now().UnixNano()
	rids, err := st.commit(ctx, &b)
	if err != nil {
		return err
	}
	if b.hasPrune {
		s.seenWritten = 0
	}
	for _, d := range dones {
		if err := d(ctx); err != nil {
			err = fmt.Errorf("finish acknowledged records: %w", err)
			s.setError(err)
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackMark, s.hasAck = mark, hasMark
	if s.cfg.Mode == ModeSnapshot {
		for i := range entries {
			e := &entries[i]
			if e.kind != entryChange {
				continue
			}
			ov := s.overlay[e.key]
			if ov == nil {
				continue
			}
			ov.refs--
			if ov.refs > 0 {
				continue
			}
			delete(s.overlay, e.key)
			if rid, ok := rids[e.key]; ok && s.running && ov.seenRun == s.runSeq {
				s.marks.set(rid)
			}
		}
	}
	clear(s.fifo[s.head:end])
	s.head = end
	if s.head == len(s.fifo) {
		s.fifo, s.head = s.fifo[:0], 0
	} else if s.head > 4096 && s.head > len(s.fifo)/2 {
		n := copy(s.fifo, s.fifo[s.head:])
		clear(s.fifo[n:])
		s.fifo, s.head = s.fifo[:n], 0
	}
	return nil
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

// loop runs the schedule until ctx is done or a run fails.
func (s *Source) loop(ctx context.Context, met *metrics, startedNS, doneNS int64) {
	defer close(s.done)
	var queue []time.Time
	var last time.Time
	switch {
	case startedNS > doneNS:
		// A run was not fully acknowledged: run it again, same run time.
		queue = []time.Time{time.Unix(0, startedNS).UTC()}
		last = queue[0]
	case doneNS == 0:
		queue = []time.Time{s.now().UTC()}
		last = queue[0]
	default:
		last = time.Unix(0, doneNS).UTC()
	}
	for {
		if len(queue) == 0 {
			now := s.now()
			m := missed(s.sched, last, now, s.cfg.MaxCatchUp)
			if len(m) > 0 && s.cfg.CatchUp == CatchUpOne {
				m = m[len(m)-1:]
			}
			queue = m
		}
		if len(queue) == 0 {
			next := s.sched.Next(last)
			if next.IsZero() {
				<-ctx.Done()
				return
			}
			wait := next.Sub(s.now())
			if s.cfg.Jitter > 0 {
				wait += time.Duration(rand.Int64N(int64(s.cfg.Jitter)))
			}
			s.mu.Lock()
			s.nextRun = next
			s.mu.Unlock()
			t := time.NewTimer(max(wait, 0))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		rt := queue[0].UTC()
		queue = queue[1:]
		last = rt
		start := time.Now()
		if err := s.run(ctx, rt); err == nil {
			end := s.now()
			s.caughtUp.Store(end.UnixNano())
			met.duration.WithLabelValues(OutcomeSuccess).Observe(time.Since(start).Seconds())
			met.last.Set(float64(end.UnixNano()) / 1e9)
		} else {
			if ctx.Err() != nil {
				return
			}
			met.duration.WithLabelValues(OutcomeError).Observe(time.Since(start).Seconds())
			err = fmt.Errorf("poll run at %s: %w", rt.Format(time.RFC3339Nano), err)
			s.setError(err)
			select {
			case s.out <- item{err: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

// run executes one run and records its completion.
func (s *Source) run(ctx context.Context, rt time.Time) error {
	if err := s.st.setMeta(ctx, metaStarted, strconv.FormatInt(rt.UnixNano(), 10)); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastRun = rt
	s.mu.Unlock()
	s.runs.Add(1)
	var err error
	switch s.cfg.Mode {
	case ModeCursor:
		err = s.runCursor(ctx, rt)
	case ModeSnapshot:
		err = s.runSnapshot(ctx, rt)
	case ModeEach:
		err = s.runEach(ctx, rt)
	}
	if err != nil {
		return err
	}
	return s.endRun(ctx, rt)
}

// endRun marks rt complete at once when nothing is waiting for
// acknowledgement, and otherwise once everything before it is acknowledged.
func (s *Source) endRun(ctx context.Context, rt time.Time) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.head < len(s.fifo) {
		s.fifo = append(s.fifo, pending{kind: entryRunEnd, runNS: rt.UnixNano()})
		s.mu.Unlock()
		return nil
	}
	st := s.st
	s.mu.Unlock()
	// The run is over and acknowledged: record it even when Close is
	// under way, or it would run again after a restart.
	_, err := st.commit(context.WithoutCancel(ctx), &commitBatch{kind: s.cfg.Cursor, doneNS: rt.UnixNano()})
	return err
}

// send hands a batch to Read, blocking while Read is behind.
func (s *Source) send(ctx context.Context, batch []core.Change) error {
	if len(batch) == 0 {
		return nil
	}
	select {
	case s.out <- item{batch: batch}:
		s.emitted.Add(int64(len(batch)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// change builds the change of a record. Callers hold mu.
// pos becomes the change's Position.Data: callers do not modify it.
func (s *Source) change(r *Record, op core.Op, pos []byte, rt time.Time) core.Change {
	src := s.cfg.Source
	if r.Source.System != "" {
		src.System = r.Source.System
	}
	if r.Source.Schema != "" {
		src.Schema = r.Source.Schema
	}
	if r.Source.Table != "" {
		src.Table = r.Source.Table
	}
	if r.Source.Endpoint != "" {
		src.Endpoint = r.Source.Endpoint
	}
	if !r.Source.CommitTime.IsZero() {
		src.CommitTime = r.Source.CommitTime
	}
	if r.Source.TxID != "" {
		src.TxID = r.Source.TxID
	}
	if s.runMeta == nil || !s.runAt.Equal(rt) {
		s.runMeta = map[string]any{"run_time": rt, "poll_mode": s.modeAny}
		s.runAt = rt
	}
	meta := s.runMeta
	if len(r.Meta) > 0 {
		meta = make(map[string]any, len(r.Meta)+2)
		maps.Copy(meta, r.Meta)
		meta["run_time"] = s.runMeta["run_time"]
		meta["poll_mode"] = s.modeAny
	}
	if r.Op != "" && s.cfg.Mode != ModeSnapshot {
		op = r.Op
	}
	return core.Change{
		Op:       op,
		Key:      r.Key,
		After:    r.Data,
		Meta:     meta,
		Source:   src,
		Position: core.Position{Version: 1, Data: pos},
		Raw:      r.Raw,
		Invalid:  r.Invalid,
	}
}

// bitset is a growable set of row ids.
type bitset []uint64

func (b *bitset) set(i int64) {
	w := int(i >> 6)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w-len(*b)+1+len(*b)/4)...)
	}
	(*b)[w] |= 1 << (uint(i) & 63)
}

func (b bitset) has(i int64) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

var (
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
	_ core.Freshness      = (*Source)(nil)
)

// arena hands out read-only copies of short byte strings from shared
// blocks: one allocation per block rather than per position. A block stays
// in memory while any position in it does.
type arena struct{ block []byte }

const arenaBlock = 64 << 10

func (a *arena) copy(b []byte) []byte { return arenaCopy(a, b) }

// copyString is copy for a string.
func (a *arena) copyString(s string) []byte { return arenaCopy(a, s) }

// arenaCopy copies b into a block of a.
func arenaCopy[T string | []byte](a *arena, b T) []byte {
	if cap(a.block)-len(a.block) < len(b) {
		if len(b) > arenaBlock/8 {
			return append([]byte(nil), b...)
		}
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, b...)
	return a.block[start:len(a.block):len(a.block)]
}
