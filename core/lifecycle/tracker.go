package lifecycle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// The event types the tracker publishes.
const (
	TypeViolation = "dev.tributary.lifecycle.violation"
	TypeStuck     = "dev.tributary.lifecycle.stuck"
	TypeResolved  = "dev.tributary.lifecycle.resolved"
)

// SinkPrefix starts the name of the tracker's sink; the generation of its
// store follows, as in "lifecycle-3fa9c2d1". The dash keeps it apart from
// every configured sink (their names are snake_case), and the generation
// gives a new store a new consumer group, which reads the stream from its
// beginning.
const SinkPrefix = "lifecycle-"

// SinkName returns the name of the tracker's sink for a store generation.
func SinkName(generation string) string { return SinkPrefix + generation }

// Publisher publishes the tracker's own events (violations, stuck,
// resolved) to the stream and returns once they are durable.
type Publisher func(ctx context.Context, events []*core.Event) error

// Config configures a Tracker.
type Config struct {
	// Machines are the entities followed.
	Machines []*Machine
	// Dir is the directory of the store; "" keeps it in memory.
	Dir string
	// Generation is the store generation the sidecar named the sink after
	// (see Generation); a new store records it.
	Generation string
	// Publish sends violations and stuck and resolved events; nil drops
	// them (they are still counted).
	Publish Publisher
	// Metrics registers the tracker's metrics; nil registers none.
	Metrics prometheus.Registerer
	// Logger logs; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Tick is how often held events are judged and time limits checked;
	// 0 means 200ms.
	Tick time.Duration
	// CacheKiB bounds the store's page cache; 0 means 8 MiB (the hot
	// path appends to the log's last pages).
	CacheKiB int
	// SnapshotEvery is how many judged events, at least, lie between two
	// snapshots of the instances' states (see SnapshotFile); 0 means a
	// million, or the number of instances when they are more. A snapshot
	// is also written every ten minutes when events were judged since.
	// Negative: only when Snapshot is called.
	SnapshotEvery int
}

// Tracker follows entity instances through their state machines. It is a
// core.Sink: the runtime hands it the stream's events through its own
// consumer group, in order per partition key, and commits behind what
// Write stored. Write appends each event to the store's log, linked to
// its instance's event before, in one transaction per call; an event the
// instance's timeline already holds (a redelivery) is dropped, so it
// changes nothing. It holds each event for the entity's reordering
// window; a timer then judges the held events of each instance in
// event-time order, moves the instance, records the verdicts in the store
// and publishes a violation for an event that breaks the machine. The
// same timer reports instances that stay in a state past its limit,
// prunes finished instances past their retention, and writes a snapshot
// of every instance's state in the background now and then.
//
// The current state of every instance lives in memory, in a compact
// table (about 100 bytes an instance); the store holds the log and the
// snapshot they are rebuilt from when the tracker opens.
type Tracker struct {
	cfg      Config
	byType   map[string][]*Machine
	machines map[string]*Machine
	mach     map[*Machine]uint16
	// states names each machine's states by code-1; codes is the
	// reverse; within is each state's limit in ns (0: none).
	states [][]string
	codes  []map[string]uint8
	within [][]int64

	mu      sync.Mutex // serializes store writes and guards what follows
	store   *Store
	table   *table
	pending []pendingEvent
	// nextSeq is the log sequence of the next event; lastJudged the
	// judging order of the latest verdict (nanoseconds of the clock,
	// kept increasing).
	nextSeq, lastJudged int64
	// sinceSnapshot counts the events judged since the last snapshot.
	sinceSnapshot int
	lastSnapshot  time.Time
	// snapshotFailed is when the latest snapshot failed.
	snapshotFailed time.Time
	// snapshotting, while a snapshot is synced and renamed, is closed
	// once it is.
	snapshotting chan struct{}
	snapWG       sync.WaitGroup
	crash        func(step string) error
	stop         chan struct{}
	done         chan struct{}

	events     *prometheus.CounterVec
	violations *prometheus.CounterVec
	stuck      *prometheus.GaugeVec
	held       prometheus.Gauge

	lastStuck, lastPrune time.Time
	// nextDeadline is at most the earliest time limit of an instance not
	// reported stuck, and finalSince, per entity, at most the earliest
	// entry into a final state: the table is scanned for stuck or
	// finished instances only once one may be due.
	nextDeadline int64
	finalSince   []int64
	// stuckCount counts the instances reported stuck per entity and
	// state code.
	stuckCount map[[2]uint16]int
}

type pendingEvent struct {
	seq                      int64
	m                        *Machine
	id, eventID, typ, source string
	time, arrived            int64
}

// instance is an instance's current state, decoded from its slot.
type instance struct {
	state     string
	entered   int64
	lastEvent string
	stuck     bool
}

// maxIDLen bounds an instance id and an event id.
const maxIDLen = 4096

// New returns a tracker for cfg. It does no I/O.
func New(cfg Config) *Tracker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.CacheKiB == 0 {
		cfg.CacheKiB = 8 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{cfg: cfg, byType: map[string][]*Machine{}, machines: map[string]*Machine{}, mach: map[*Machine]uint16{}}
	for i, m := range cfg.Machines {
		t.machines[m.Name()] = m
		t.mach[m] = uint16(i)
		for _, ty := range m.Types() {
			t.byType[ty] = append(t.byType[ty], m)
		}
		t.states = append(t.states, nil)
		t.codes = append(t.codes, map[string]uint8{})
		t.within = append(t.within, nil)
		for _, st := range m.Entity.StateNames() {
			t.code(uint16(i), st)
		}
	}
	t.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_lifecycle_events_total", Help: "Events the lifecycle tracker judged, per entity."}, []string{"entity"})
	t.violations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tributary_lifecycle_violations_total", Help: "Events that broke their entity's state machine, per entity and reason."}, []string{"entity", "reason"})
	t.stuck = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tributary_lifecycle_stuck", Help: "Instances in a state past its time limit, per entity and state."}, []string{"entity", "state"})
	t.held = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tributary_lifecycle_held", Help: "Events held in the reordering window."})
	// A clash with a collector of the same name leaves the metric
	// counting unexported; the tracker works on.
	t.events, _ = core.RegisterMetric(cfg.Metrics, t.events)
	t.violations, _ = core.RegisterMetric(cfg.Metrics, t.violations)
	t.stuck, _ = core.RegisterMetric(cfg.Metrics, t.stuck)
	t.held, _ = core.RegisterMetric(cfg.Metrics, t.held)
	return t
}

// code returns the code of state in machine mi, giving it one if it has
// none (a state a snapshot names that the machine lost). A machine has at
// most 255 states; a later one shares the last code.
func (t *Tracker) code(mi uint16, state string) uint8 {
	if c, ok := t.codes[mi][state]; ok {
		return c
	}
	if len(t.states[mi]) >= 255 {
		return 255
	}
	t.states[mi] = append(t.states[mi], state)
	c := uint8(len(t.states[mi]))
	t.codes[mi][state] = c
	t.within[mi] = append(t.within[mi], int64(t.cfg.Machines[mi].Within(state)))
	return c
}

func (t *Tracker) stateName(s *slot) string {
	if s.state == 0 {
		return ""
	}
	return t.states[s.mach][s.state-1]
}

func (t *Tracker) instanceOf(s *slot) instance {
	_, last := t.table.record(s.ref)
	return instance{state: t.stateName(s), entered: s.entered, lastEvent: last, stuck: s.stuck}
}

// Types returns the event types the tracker reads: those of every
// entity's transitions, sorted.
func (t *Tracker) Types() []string {
	out := make([]string, 0, len(t.byType))
	for ty := range t.byType {
		out = append(out, ty)
	}
	slices.Sort(out)
	return out
}

// Machine returns the machine of entity, or nil.
func (t *Tracker) Machine(entity string) *Machine { return t.machines[entity] }

// Configure accepts an empty configuration: the tracker is configured by
// the `entities:` section, through Config.
func (t *Tracker) Configure(cfg core.Config) error { return cfg.Decode(&struct{}{}) }

// Open opens the store, rebuilds every instance's state from the
// snapshot and the log after it, takes back the events that were held
// when the tracker last stopped, and starts the timer.
func (t *Tracker) Open(ctx context.Context, _ core.Env) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store != nil {
		return nil
	}
	path := ""
	if t.cfg.Dir != "" {
		path = filepath.Join(t.cfg.Dir, StoreFile)
	}
	st, err := OpenStore(ctx, path, t.cfg.CacheKiB)
	if err != nil {
		return err
	}
	if t.cfg.Generation != "" {
		if g, err := st.Generation(ctx, t.cfg.Generation); err != nil {
			st.Close()
			return err
		} else if g != t.cfg.Generation {
			t.cfg.Logger.Warn("lifecycle store changed since the sidecar started; restart it to follow the new store from the stream's beginning", "store", path)
		}
	}
	t.store = st
	if err := t.recover(ctx); err != nil {
		st.Close()
		t.store = nil
		return err
	}
	// A snapshot may hold instances pruned after it was written.
	if err := t.prune(ctx, t.cfg.Now()); err != nil {
		st.Close()
		t.store = nil
		return err
	}
	t.lastPrune = t.cfg.Now()
	t.held.Set(float64(len(t.pending)))
	t.lastSnapshot = time.Now()
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go t.loop(t.stop, t.done)
	return nil
}

// Close stops the timer, waits for a snapshot being written, writes one of
// the events judged since the last (unless Config.SnapshotEvery is
// negative), and closes the store. Held events stay stored and are judged
// after the next Open. It is safe to call twice.
func (t *Tracker) Close(ctx context.Context) error {
	t.mu.Lock()
	stop, done := t.stop, t.done
	t.stop, t.done = nil, nil
	t.mu.Unlock()
	if stop != nil {
		close(stop)
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("close lifecycle tracker: %w", ctx.Err())
		}
	}
	snapDone := make(chan struct{})
	go func() { t.snapWG.Wait(); close(snapDone) }()
	select {
	case <-snapDone:
	case <-ctx.Done():
		return fmt.Errorf("close lifecycle tracker: wait for its snapshot: %w", ctx.Err())
	}
	// A snapshot of what was judged since the last one, so that the next
	// start-up and `trace` from the files read no log after it.
	var snapErr error
	t.mu.Lock()
	due := t.cfg.SnapshotEvery >= 0 && t.sinceSnapshot > 0 && t.store != nil
	t.mu.Unlock()
	if due {
		if err := t.Snapshot(ctx); err != nil {
			snapErr = fmt.Errorf("close lifecycle tracker: %w", err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store == nil {
		return snapErr
	}
	err := t.store.Close()
	t.store, t.pending, t.table = nil, nil, nil
	return errors.Join(snapErr, err)
}

func (t *Tracker) loop(stop, done chan struct{}) {
	defer close(done)
	tk := time.NewTicker(t.cfg.Tick)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			if err := t.Step(context.Background()); err != nil {
				t.cfg.Logger.Warn("lifecycle tracker", "err", err)
			}
		}
	}
}

// Write appends each delivery's event to the log, once for every instance
// it concerns, and holds it for judging. An event whose id cannot be
// found fails (the runtime dead-letters the tracker's copy, never the
// event); an event the instance's timeline already holds is delivered
// again without effect.
func (t *Tracker) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	out := make([]core.Result, len(ds))
	type row struct {
		i int
		p pendingEvent
	}
	var rows []row
	held := map[string]bool{}
	var env *rules.EventEnv
	now := t.cfg.Now().UnixNano()
	for i, d := range ds {
		ev := d.Event
		if held[ev.PartitionKey] {
			out[i] = core.Result{Status: core.StatusRetry}
			continue
		}
		if env == nil {
			env = rules.NewEventEnv(ev, "lifecycle")
		} else {
			env.Reset(ev, "lifecycle")
		}
		evTime := ev.Time.UnixNano()
		if ev.Time.IsZero() {
			evTime = now
		}
		var failed error
		if len(ev.ID) > maxIDLen {
			failed = fmt.Errorf("event id of %d bytes: the lifecycle tracker takes ids of at most %d", len(ev.ID), maxIDLen)
		}
		for _, m := range t.byType[ev.Type] {
			if failed != nil {
				break
			}
			id, _, err := m.ID(ev.Type, env)
			if err == nil && len(id) > maxIDLen {
				err = fmt.Errorf("entity %s: id of a %s event has %d bytes, more than %d", m.Name(), ev.Type, len(id), maxIDLen)
			}
			if err != nil {
				failed = err
				break
			}
			rows = append(rows, row{i, pendingEvent{m: m, id: id, eventID: ev.ID, typ: ev.Type, source: ev.Source, time: evTime, arrived: now}})
		}
		if failed != nil {
			out[i] = core.Result{Status: core.StatusFailed, Err: failed}
			held[ev.PartitionKey] = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fail := func(err error) []core.Result {
		for i := range out {
			if out[i].Status == core.StatusDelivered {
				out[i] = core.Result{Status: core.StatusRetry, Err: err}
			}
		}
		return out
	}
	if t.store == nil {
		return fail(errors.New("lifecycle tracker is not open"))
	}
	// The links and blooms change in the table only once the batch is
	// stored; until then, the batch's own view of them.
	type link struct {
		head  int64
		bloom uint64
	}
	links := map[uint32]link{}
	logRows := make([]logRow, 0, len(rows))
	added := make([]pendingEvent, 0, len(rows))
	slots := make([]uint32, 0, len(rows))
	seq := t.nextSeq
	for _, r := range rows {
		p := r.p
		mi := t.mach[p.m]
		i, ok := t.table.find(mi, p.id)
		if !ok {
			i = t.table.add(mi, p.id)
		}
		l, ok := links[i]
		if !ok {
			s := t.table.slot(i)
			l = link{s.head, s.bloom}
		}
		bits := idBits(p.eventID)
		if l.bloom&bits == bits {
			dup, err := t.holds(ctx, logRows, slots, i, l.head, p.eventID)
			if err != nil {
				return fail(fmt.Errorf("lifecycle store: %w", err))
			}
			if dup {
				continue
			}
		}
		p.seq = seq
		logRows = append(logRows, logRow{seq: seq, prev: l.head, entity: p.m.Name(), id: p.id, time: p.time, eventID: p.eventID, typ: p.typ, source: p.source, position: ds[r.i].Position, arrived: p.arrived})
		slots = append(slots, i)
		added = append(added, p)
		links[i] = link{seq, l.bloom | bits}
		seq++
	}
	if len(logRows) == 0 {
		return out
	}
	err := t.store.tx(ctx, func(tx *sql.Tx) error { return t.store.appendRows(ctx, tx, logRows) })
	if err != nil {
		return fail(fmt.Errorf("lifecycle store: %w", err))
	}
	t.nextSeq = seq
	for i, l := range links {
		s := t.table.slot(i)
		s.head, s.bloom = l.head, l.bloom
	}
	t.pending = append(t.pending, added...)
	t.held.Set(float64(len(t.pending)))
	return out
}

// holds reports whether the timeline of the instance in slot i already
// holds eventID: among the batch's rows, or down its chain in the log.
func (t *Tracker) holds(ctx context.Context, batch []logRow, slots []uint32, i uint32, head int64, eventID string) (bool, error) {
	for k := range batch {
		if slots[k] == i && batch[k].eventID == eventID {
			return true, nil
		}
	}
	found := false
	_, err := t.store.chain(ctx, head, func(r logRow) bool {
		found = r.eventID == eventID
		return found
	})
	return found, err
}

// Step judges the held events whose window has passed, reports instances
// past their time limit, prunes finished instances past retention, and
// starts a snapshot in the background when one is due. The timer calls
// it; tests call it with a clock of their own.
func (t *Tracker) Step(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store == nil {
		return nil
	}
	now := t.cfg.Now()
	err := t.judge(ctx, now)
	if now.Sub(t.lastStuck) >= time.Second || now.Before(t.lastStuck) {
		if serr := t.checkStuck(ctx, now); serr != nil {
			err = errors.Join(err, serr)
		} else {
			t.lastStuck = now
		}
	}
	if now.Sub(t.lastPrune) >= time.Minute || now.Before(t.lastPrune) {
		if perr := t.prune(ctx, now); perr != nil {
			err = errors.Join(err, perr)
		} else {
			t.lastPrune = now
		}
	}
	if t.snapshotDue() {
		// The table is written under the lock (about 0.1 s a million
		// instances); the file is synced and renamed after.
		if crash, serr := t.beginSnapshot(); serr != nil {
			err = errors.Join(err, serr)
		} else {
			go func() {
				if err := t.endSnapshot(crash); err != nil {
					t.cfg.Logger.Warn("lifecycle tracker", "err", err)
				}
			}()
		}
	}
	return err
}

type instKey struct {
	m  *Machine
	id string
}

// due groups the held events to judge at nowNs by instance: those whose
// window has passed, with every other held event of the instance that
// happened before the latest of them. order lists the instances in the
// order of their first held event; rest is what stays held.
func (t *Tracker) due(nowNs int64) (order []instKey, groups map[instKey][]pendingEvent, rest []pendingEvent) {
	latest := map[instKey]int64{}
	for _, p := range t.pending {
		if p.arrived+int64(p.m.Entity.Window) <= nowNs {
			k := instKey{p.m, p.id}
			if cur, ok := latest[k]; !ok || p.time > cur {
				latest[k] = p.time
			}
		}
	}
	if len(latest) == 0 {
		return nil, nil, t.pending
	}
	groups = map[instKey][]pendingEvent{}
	rest = t.pending[:0:0]
	for _, p := range t.pending {
		k := instKey{p.m, p.id}
		if lt, ok := latest[k]; ok && p.time <= lt {
			if _, seen := groups[k]; !seen {
				order = append(order, k)
			}
			groups[k] = append(groups[k], p)
			continue
		}
		rest = append(rest, p)
	}
	return order, groups, rest
}

// judge judges, per instance, the held events whose window has passed,
// with every other held event of the instance that happened before the
// latest of them, in event-time order.
func (t *Tracker) judge(ctx context.Context, now time.Time) error {
	if len(t.pending) == 0 {
		return nil
	}
	nowNs := now.UnixNano()
	order, groups, rest := t.due(nowNs)
	if len(order) == 0 {
		return nil
	}
	// The verdicts and moves reach the table once they are stored.
	type move struct {
		slot    uint32
		inst    instance
		updated int64
	}
	var moves []move
	var js []judged
	var stuckOff []instKey
	var out []*core.Event
	counts := map[string]int{}
	viol := map[[2]string]int{}
	order64 := t.lastJudged
	for _, k := range order {
		evs := groups[k]
		slices.SortFunc(evs, func(a, b pendingEvent) int {
			if a.time != b.time {
				return cmpInt(a.time, b.time)
			}
			return cmpInt(a.seq, b.seq)
		})
		i, ok := t.table.find(t.mach[k.m], k.id)
		if !ok {
			continue // pruned meanwhile; its rows went with it
		}
		s := t.table.slot(i)
		inst := t.instanceOf(s)
		exists := s.state != 0
		wasStuck := inst.stuck
		for _, p := range evs {
			order64 = max(nowNs, order64+1)
			v, err := k.m.Judge(exists, inst.state, p.typ)
			if err != nil {
				// Held from before the entity lost the transition.
				js = append(js, judged{seq: p.seq, order: order64, verdict: "ignored", state: inst.state})
				continue
			}
			verdict := "ok"
			if v.Reason != "" {
				verdict = v.Reason
				viol[[2]string{k.m.Name(), v.Reason}]++
				out = append(out, violationEvent(k.m, p, inst, exists, v, now))
			}
			if !exists || v.To != inst.state {
				if exists && inst.stuck {
					out = append(out, stateEvent(TypeResolved, k.m, k.id, inst, now))
				}
				inst.state, inst.entered, inst.lastEvent, inst.stuck = v.To, p.time, p.eventID, false
			}
			exists = true
			counts[k.m.Name()]++
			js = append(js, judged{seq: p.seq, order: order64, verdict: verdict, state: inst.state})
		}
		if wasStuck && !inst.stuck {
			stuckOff = append(stuckOff, k)
		}
		moves = append(moves, move{i, inst, order64})
	}
	names := t.store.nameCount()
	err := t.store.tx(ctx, func(tx *sql.Tx) error {
		if err := t.store.setJudged(ctx, tx, js); err != nil {
			return err
		}
		for _, k := range stuckOff {
			if err := setStuck(ctx, tx, k.m.Name(), k.id, false); err != nil {
				return err
			}
		}
		return t.publish(ctx, out)
	})
	if err != nil {
		t.store.forgetNames(names)
		return fmt.Errorf("judge held events: %w", err)
	}
	t.lastJudged = order64
	for _, mv := range moves {
		s := t.table.slot(mv.slot)
		if s.stuck && !mv.inst.stuck {
			t.stuckCount[[2]uint16{s.mach, uint16(s.state)}]--
		}
		if mv.inst.state != "" {
			s.state = t.code(s.mach, mv.inst.state)
		}
		s.entered, s.stuck, s.updated = mv.inst.entered, mv.inst.stuck, mv.updated
		if s.state != 0 {
			if w := t.within[s.mach][s.state-1]; w > 0 && !s.stuck {
				t.nextDeadline = min(t.nextDeadline, s.entered+w)
			}
			if t.cfg.Machines[s.mach].Final(mv.inst.state) {
				t.finalSince[s.mach] = min(t.finalSince[s.mach], s.entered)
			}
		}
		if _, last := t.table.record(s.ref); last != mv.inst.lastEvent {
			t.table.setLast(mv.slot, mv.inst.lastEvent)
		}
	}
	t.sinceSnapshot += len(js)
	t.pending = rest
	t.held.Set(float64(len(rest)))
	for e, n := range counts {
		t.events.WithLabelValues(e).Add(float64(n))
	}
	for k, n := range viol {
		t.violations.WithLabelValues(k[0], k[1]).Add(float64(n))
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (t *Tracker) publish(ctx context.Context, evs []*core.Event) error {
	if len(evs) == 0 || t.cfg.Publish == nil {
		return nil
	}
	if err := t.cfg.Publish(ctx, evs); err != nil {
		return fmt.Errorf("publish %d lifecycle events: %w", len(evs), err)
	}
	return nil
}

func violationEvent(m *Machine, p pendingEvent, inst instance, exists bool, v Verdict, now time.Time) *core.Event {
	type transition struct {
		From any    `json:"from"`
		To   string `json:"to"`
	}
	var from any
	if exists {
		from = inst.state
	}
	expected := v.Expected
	if expected == nil {
		expected = []string{}
	}
	data := map[string]any{
		"entity":     m.Name(),
		"id":         p.id,
		"reason":     v.Reason,
		"expected":   map[string]any{"from": expected, "to": v.Target},
		"actual":     transition{From: from, To: v.Target},
		"event_id":   p.eventID,
		"event_type": p.typ,
		"source":     p.source,
		"event_time": time.Unix(0, p.time).UTC(),
	}
	if exists {
		data["previous_event_id"] = inst.lastEvent
	}
	b, _ := json.Marshal(data)
	return &core.Event{
		ID:              core.EventID("lifecycle:"+m.Name(), core.Position{Data: []byte(p.eventID)}, "#violation"),
		Source:          "/tributary/lifecycle/" + m.Name(),
		SpecVersion:     core.SpecVersion,
		Type:            TypeViolation,
		Subject:         p.id,
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            b,
		PartitionKey:    p.id,
	}
}

func stateEvent(typ string, m *Machine, id string, inst instance, now time.Time) *core.Event {
	data := map[string]any{
		"entity":     m.Name(),
		"id":         id,
		"state":      inst.state,
		"entered_at": time.Unix(0, inst.entered).UTC(),
		"within":     m.Within(inst.state).String(),
		"event_id":   inst.lastEvent,
	}
	b, _ := json.Marshal(data)
	// One stuck (and one resolved) per stay in a state: the id derives
	// from the instance, the state and the event that entered it.
	key := m.Name() + "\x00" + id + "\x00" + inst.state + "\x00" + inst.lastEvent
	return &core.Event{
		ID:              core.EventID("lifecycle:"+m.Name(), core.Position{Data: []byte(key)}, "#"+typ),
		Source:          "/tributary/lifecycle/" + m.Name(),
		SpecVersion:     core.SpecVersion,
		Type:            typ,
		Subject:         id,
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            b,
		PartitionKey:    id,
	}
}

var _ core.Sink = (*Tracker)(nil)
