package lifecycle

import (
	"context"
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
	// CacheKiB bounds the store's page cache; 0 means 64 MiB.
	CacheKiB int
}

// Tracker follows entity instances through their state machines. It is a
// core.Sink: the runtime hands it the stream's events through its own
// consumer group, in order per partition key, and commits behind what
// Write stored. Write stores each event in its instance's timeline
// (idempotently, by event id: a redelivery changes nothing) and holds it
// for the entity's reordering window; a timer then judges the held events
// of each instance in event-time order, moves the instance, and publishes
// a violation for an event that breaks the machine. The same timer
// reports instances that stay in a state past its limit, and prunes
// finished instances past their retention.
type Tracker struct {
	cfg      Config
	byType   map[string][]*Machine
	machines map[string]*Machine

	mu      sync.Mutex // serializes store writes and guards pending
	store   *Store
	pending []pendingEvent
	stop    chan struct{}
	done    chan struct{}

	events     *prometheus.CounterVec
	violations *prometheus.CounterVec
	stuck      *prometheus.GaugeVec
	held       prometheus.Gauge

	lastStuck, lastPrune time.Time
}

type pendingEvent struct {
	seq                      int64
	m                        *Machine
	id, eventID, typ, source string
	time, arrived            int64
}

// New returns a tracker for cfg. It does no I/O.
func New(cfg Config) *Tracker {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 200 * time.Millisecond
	}
	if cfg.CacheKiB == 0 {
		cfg.CacheKiB = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{cfg: cfg, byType: map[string][]*Machine{}, machines: map[string]*Machine{}}
	for _, m := range cfg.Machines {
		t.machines[m.Name()] = m
		for _, ty := range m.Types() {
			t.byType[ty] = append(t.byType[ty], m)
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

// Open opens the store, takes back the events that were held when the
// tracker last stopped, and starts the timer.
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
	pending, err := st.loadPending(ctx, t.machines)
	if err != nil {
		st.Close()
		return err
	}
	t.store, t.pending = st, pending
	t.held.Set(float64(len(pending)))
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go t.loop(t.stop, t.done)
	return nil
}

// Close stops the timer and closes the store. Held events stay stored and
// are judged after the next Open. It is safe to call twice.
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
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store == nil {
		return nil
	}
	err := t.store.Close()
	t.store, t.pending = nil, nil
	return err
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

// Write stores each delivery's event in the timeline of every instance it
// concerns and holds it for judging. An event whose id cannot be found
// fails (the runtime dead-letters the tracker's copy, never the event);
// an event already stored is delivered again without effect.
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
		for _, m := range t.byType[ev.Type] {
			id, _, err := m.ID(ev.Type, env)
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
	positions := make([]string, len(rows))
	for k, r := range rows {
		positions[k] = ds[r.i].Position
	}
	added := make([]pendingEvent, 0, len(rows))
	err := t.store.tx(ctx, func(tx *storeTx) error {
		for k, r := range rows {
			p := r.p
			seq, ok, err := tx.holdEvent(ctx, p, positions[k])
			if err != nil {
				return err
			}
			if ok {
				p.seq = seq
				added = append(added, p)
			}
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("lifecycle store: %w", err))
	}
	t.pending = append(t.pending, added...)
	t.held.Set(float64(len(t.pending)))
	return out
}

// Step judges the held events whose window has passed, reports instances
// past their time limit, and prunes finished instances past retention.
// The timer calls it; tests call it with a clock of their own.
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
	return err
}

type instKey struct {
	m  *Machine
	id string
}

// judge judges, per instance, the held events whose window has passed,
// with every other held event of the instance that happened before the
// latest of them, in event-time order.
func (t *Tracker) judge(ctx context.Context, now time.Time) error {
	if len(t.pending) == 0 {
		return nil
	}
	nowNs := now.UnixNano()
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
		return nil
	}
	groups := map[instKey][]pendingEvent{}
	var order []instKey
	rest := t.pending[:0:0]
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
	var out []*core.Event
	counts := map[string]int{}
	viol := map[[2]string]int{}
	err := t.store.tx(ctx, func(tx *storeTx) error {
		for _, k := range order {
			evs := groups[k]
			slices.SortFunc(evs, func(a, b pendingEvent) int {
				if a.time != b.time {
					return cmpInt(a.time, b.time)
				}
				return cmpInt(a.seq, b.seq)
			})
			inst, exists, err := tx.instance(ctx, k.m.Name(), k.id)
			if err != nil {
				return err
			}
			changed := false
			for _, p := range evs {
				v, err := k.m.Judge(exists, inst.state, p.typ)
				if err != nil {
					// Held from before the entity lost the transition.
					if _, err := tx.record(ctx, p, "ignored"); err != nil {
						return err
					}
					continue
				}
				verdict := "ok"
				if v.Reason != "" {
					verdict = v.Reason
				}
				recorded, err := tx.record(ctx, p, verdict)
				if err != nil {
					return err
				}
				if !recorded {
					continue // judged before: a redelivery changes nothing
				}
				if v.Reason != "" {
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
				changed = true
				counts[k.m.Name()]++
			}
			if !changed {
				continue
			}
			var deadline *int64
			if w := k.m.Within(inst.state); w > 0 && !inst.stuck {
				d := inst.entered + int64(w)
				deadline = &d
			}
			if err := tx.putInstance(ctx, k.m.Name(), k.id, inst, nowNs, deadline); err != nil {
				return err
			}
		}
		return t.publish(ctx, out)
	})
	if err != nil {
		return fmt.Errorf("judge held events: %w", err)
	}
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

// checkStuck reports the instances past their state's limit, once each,
// and refreshes the stuck gauge.
func (t *Tracker) checkStuck(ctx context.Context, now time.Time) error {
	err := t.store.tx(ctx, func(tx *storeTx) error {
		found, err := tx.overdue(ctx, now.UnixNano(), 1000)
		if err != nil {
			return err
		}
		var out []*core.Event
		for _, o := range found {
			m := t.machines[o.entity]
			if m == nil {
				continue
			}
			out = append(out, stateEvent(TypeStuck, m, o.id, o.inst, now))
			if err := tx.markStuck(ctx, o.entity, o.id); err != nil {
				return err
			}
		}
		return t.publish(ctx, out)
	})
	if err != nil {
		return fmt.Errorf("check time limits: %w", err)
	}
	counts, err := t.store.stuckCounts(ctx)
	if err != nil {
		return err
	}
	t.stuck.Reset()
	for k, n := range counts {
		t.stuck.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
	return nil
}

// prune deletes the instances that ended (entered a final state, by
// event time) longer than their entity's retention ago, with their
// timelines.
func (t *Tracker) prune(ctx context.Context, now time.Time) error {
	for _, m := range t.cfg.Machines {
		if len(m.Entity.Final) == 0 {
			continue
		}
		cutoff := now.Add(-m.Entity.Retention).UnixNano()
		if err := t.store.tx(ctx, func(tx *storeTx) error {
			return tx.prune(ctx, m.Name(), m.Entity.Final, cutoff)
		}); err != nil {
			return fmt.Errorf("prune %s: %w", m.Name(), err)
		}
	}
	return nil
}

// Trace returns the instance id of entity with its timeline.
func (t *Tracker) Trace(ctx context.Context, entity, id string) (*Instance, error) {
	st, err := t.openStore(entity)
	if err != nil {
		return nil, err
	}
	return st.Trace(ctx, entity, id)
}

// List returns the instances q selects.
func (t *Tracker) List(ctx context.Context, q Query) ([]Instance, error) {
	st, err := t.openStore(q.Entity)
	if err != nil {
		return nil, err
	}
	if q.Now.IsZero() {
		q.Now = t.cfg.Now()
	}
	return st.List(ctx, q)
}

// ErrUnknownEntity is returned by Trace and List for an entity that is
// not declared.
var ErrUnknownEntity = errors.New("entity is not declared")

func (t *Tracker) openStore(entity string) (*Store, error) {
	if t.machines[entity] == nil {
		return nil, fmt.Errorf("%q: %w", entity, ErrUnknownEntity)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store == nil {
		return nil, errors.New("the lifecycle tracker is not running yet")
	}
	return t.store, nil
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
