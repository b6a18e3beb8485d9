package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Trace returns the instance id of entity with its timeline: its state
// from memory, its timeline from the log, down its chain.
func (t *Tracker) Trace(ctx context.Context, entity, id string) (*Instance, error) {
	m := t.machines[entity]
	if m == nil {
		return nil, fmt.Errorf("%q: %w", entity, ErrUnknownEntity)
	}
	t.mu.Lock()
	if t.store == nil {
		t.mu.Unlock()
		return nil, errNotRunning
	}
	st := t.store
	i, ok := t.table.find(t.mach[m], id)
	var in *Instance
	var head int64
	if ok {
		s := t.table.slot(i)
		in = t.view(s)
		head = s.head
	}
	t.mu.Unlock()
	if !ok || head == 0 {
		return nil, fmt.Errorf("%s %q: %w", entity, id, ErrNotFound)
	}
	rows, err := st.chain(ctx, head, nil)
	if err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	in.Timeline = timeline(rows)
	return in, nil
}

// view returns the Instance of slot s, without its timeline.
func (t *Tracker) view(s *slot) *Instance {
	id, last := t.table.record(s.ref)
	in := &Instance{Entity: t.cfg.Machines[s.mach].Name(), ID: id, State: t.stateName(s), Stuck: s.stuck}
	if s.state != 0 {
		in.EnteredAt, in.LastEventID, in.UpdatedAt = time.Unix(0, s.entered).UTC(), last, time.Unix(0, s.updated).UTC()
	}
	return in
}

// List returns the instances q selects, longest in their state first. It
// scans the table.
func (t *Tracker) List(ctx context.Context, q Query) ([]Instance, error) {
	m := t.machines[q.Entity]
	if m == nil {
		return nil, fmt.Errorf("%q: %w", q.Entity, ErrUnknownEntity)
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.Now.IsZero() {
		q.Now = t.cfg.Now()
	}
	before := int64(1<<63 - 1)
	if q.OlderThan > 0 {
		before = q.Now.Add(-q.OlderThan).UnixNano()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.store == nil {
		return nil, errNotRunning
	}
	mi := t.mach[m]
	var want uint8
	if q.State != "" {
		c, ok := t.codes[mi][q.State]
		if !ok {
			return []Instance{}, nil
		}
		want = c
	}
	type hit struct {
		slot    uint32
		entered int64
	}
	var hits []hit
	t.table.eachSlot(func(i uint32, s *slot) {
		if s.mach == mi && s.state != 0 && (want == 0 || s.state == want) && s.entered <= before {
			hits = append(hits, hit{i, s.entered})
		}
	})
	slices.SortFunc(hits, func(a, b hit) int { return cmpInt(a.entered, b.entered) })
	out := make([]Instance, 0, min(len(hits), q.Limit))
	for _, h := range hits[:min(len(hits), q.Limit)] {
		out = append(out, *t.view(t.table.slot(h.slot)))
	}
	return out, nil
}

// ErrUnknownEntity is returned by Trace and List for an entity that is
// not declared.
var ErrUnknownEntity = errors.New("entity is not declared")

var errNotRunning = errors.New("the lifecycle tracker is not running yet")
