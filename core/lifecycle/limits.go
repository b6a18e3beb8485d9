package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tributary/tributary/core"
)

// checkStuck reports the instances past their state's limit, once each
// (up to a thousand a time, longest overdue first), and refreshes the
// stuck gauge. It scans the table once a limit may have passed.
func (t *Tracker) checkStuck(ctx context.Context, now time.Time) error {
	nowNs := now.UnixNano()
	if nowNs >= t.nextDeadline {
		if err := t.reportStuck(ctx, now); err != nil {
			return err
		}
	}
	t.stuck.Reset()
	for k, n := range t.stuckCount {
		if n > 0 {
			t.stuck.WithLabelValues(t.cfg.Machines[k[0]].Name(), t.states[k[0]][k[1]-1]).Set(float64(n))
		}
	}
	return nil
}

func (t *Tracker) reportStuck(ctx context.Context, now time.Time) error {
	nowNs := now.UnixNano()
	type overdue struct {
		slot     uint32
		deadline int64
	}
	var found []overdue
	counts := map[[2]uint16]int{}
	next := int64(math.MaxInt64)
	t.table.eachSlot(func(i uint32, s *slot) {
		if s.state == 0 {
			return
		}
		if s.stuck {
			counts[[2]uint16{s.mach, uint16(s.state)}]++
			return
		}
		if w := t.within[s.mach][s.state-1]; w > 0 {
			if d := s.entered + w; d <= nowNs {
				found = append(found, overdue{i, d})
			} else {
				next = min(next, d)
			}
		}
	})
	sort.Slice(found, func(a, b int) bool { return found[a].deadline < found[b].deadline })
	if len(found) > 1000 {
		found, next = found[:1000], nowNs // the rest at the next check
	}
	if len(found) > 0 {
		err := t.store.tx(ctx, func(tx *sql.Tx) error {
			out := make([]*core.Event, 0, len(found))
			for _, o := range found {
				s := t.table.slot(o.slot)
				m := t.cfg.Machines[s.mach]
				id, _ := t.table.record(s.ref)
				out = append(out, stateEvent(TypeStuck, m, id, t.instanceOf(s), now))
				if err := setStuck(ctx, tx, m.Name(), id, true); err != nil {
					return err
				}
			}
			return t.publish(ctx, out)
		})
		if err != nil {
			return fmt.Errorf("check time limits: %w", err)
		}
		for _, o := range found {
			s := t.table.slot(o.slot)
			s.stuck = true
			counts[[2]uint16{s.mach, uint16(s.state)}]++
		}
	}
	t.stuckCount, t.nextDeadline = counts, next
	return nil
}

// prune deletes up to 10,000 instances that ended (entered a final
// state, by event time) longer than their entity's retention ago, with
// their timelines. Instances with held events stay.
func (t *Tracker) prune(ctx context.Context, now time.Time) error {
	cutoffs := make([]int64, len(t.cfg.Machines))
	due := false
	for i, m := range t.cfg.Machines {
		cutoffs[i] = math.MinInt64
		if len(m.Entity.Final) > 0 {
			cutoffs[i] = now.Add(-m.Entity.Retention).UnixNano()
			due = due || t.finalSince[i] < cutoffs[i]
		}
	}
	if !due {
		return nil
	}
	since := make([]int64, len(t.cfg.Machines))
	for i := range since {
		since[i] = math.MaxInt64
	}
	busy := map[instKey]bool{}
	for _, p := range t.pending {
		busy[instKey{p.m, p.id}] = true
	}
	var gone []uint32
	t.table.eachSlot(func(i uint32, s *slot) {
		if s.state == 0 {
			return
		}
		m := t.cfg.Machines[s.mach]
		if !m.Final(t.stateName(s)) {
			return
		}
		keep := len(gone) >= 10_000 || s.entered >= cutoffs[s.mach]
		if !keep && len(busy) > 0 {
			id, _ := t.table.record(s.ref)
			keep = busy[instKey{m, id}]
		}
		if keep {
			since[s.mach] = min(since[s.mach], s.entered)
			return
		}
		gone = append(gone, i)
	})
	if len(gone) == 0 {
		t.finalSince = since
		return nil
	}
	err := t.store.tx(ctx, func(tx *sql.Tx) error {
		// The log's last rows may go: the next sequence is kept, so
		// that no sequence is used twice (a snapshot may name it).
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta(key, value) VALUES('next_seq', ?)`, strconv.FormatInt(t.nextSeq, 10)); err != nil {
			return err
		}
		for _, i := range gone {
			s := t.table.slot(i)
			if err := deleteChain(ctx, tx, s.head); err != nil {
				return err
			}
			if s.stuck {
				id, _ := t.table.record(s.ref)
				if err := setStuck(ctx, tx, t.cfg.Machines[s.mach].Name(), id, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune finished instances: %w", err)
	}
	for _, i := range gone {
		if s := t.table.slot(i); s.stuck {
			t.stuckCount[[2]uint16{s.mach, uint16(s.state)}]--
		}
		t.table.remove(i)
	}
	t.finalSince = since
	return nil
}
