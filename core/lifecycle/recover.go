package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

func (t *Tracker) snapshotPath() string {
	if t.cfg.Dir == "" {
		return ""
	}
	return filepath.Join(t.cfg.Dir, SnapshotFile)
}

// recover rebuilds the table: the snapshot's instances, then the log
// from the snapshot's from on (links, blooms, held events, and the
// verdicts given after the snapshot, in the order they were given), then
// the instances reported stuck.
func (t *Tracker) recover(ctx context.Context) error {
	t.table, t.pending, t.nextSeq, t.lastJudged, t.sinceSnapshot = newTable(), nil, 1, 0, 0
	// The first checks scan the table.
	t.nextDeadline, t.finalSince, t.stuckCount = math.MinInt64, make([]int64, len(t.cfg.Machines)), map[[2]uint16]int{}
	for i := range t.finalSince {
		t.finalSince[i] = math.MinInt64
	}
	var snapJudged, from int64
	if p := t.snapshotPath(); p != "" {
		if err := removeTemp(p); err != nil {
			return err
		}
		h, _, err := readSnapshot(p, func(e snapshotEntry) {
			m := t.machines[e.entity]
			if m == nil {
				return
			}
			mi := t.mach[m]
			s := t.table.slot(t.table.addLast(mi, e.id, e.last))
			s.entered, s.updated, s.head, s.bloom = e.entered, e.updated, e.head, e.bloom
			if e.state != "" {
				s.state = t.code(mi, e.state)
			}
		})
		if err != nil {
			// The log holds every event: the state is rebuilt from it all.
			t.cfg.Logger.Warn("lifecycle tracker: the snapshot cannot be read; rebuilding the instances from the whole log", "err", err)
			t.table = newTable()
			h = snapshotHeader{}
		}
		snapJudged, from = h.judged, h.from
	}
	t.lastJudged = snapJudged
	rows, err := t.store.db.QueryContext(ctx, `SELECT l.seq, l.prev, l.rec, v.judged, v.verdict, v.state FROM log l LEFT JOIN verdicts v ON v.seq = l.seq WHERE l.seq >= ? ORDER BY l.seq`, from)
	if err != nil {
		return fmt.Errorf("lifecycle store %s: read the log: %w", t.store.path, err)
	}
	defer rows.Close()
	var replay []logRow
	for rows.Next() {
		var r logRow
		var rec []byte
		var judged, verdict, state sql.NullInt64
		if err := rows.Scan(&r.seq, &r.prev, &rec, &judged, &verdict, &state); err != nil {
			return fmt.Errorf("lifecycle store %s: read the log: %w", t.store.path, err)
		}
		if err := decodeRecord(rec, &r); err != nil {
			return fmt.Errorf("lifecycle store %s: log row %d: %w", t.store.path, r.seq, err)
		}
		t.nextSeq = max(t.nextSeq, r.seq+1)
		m := t.machines[r.entity]
		if m == nil {
			continue
		}
		mi := t.mach[m]
		i, ok := t.table.find(mi, r.id)
		if !ok {
			i = t.table.add(mi, r.id)
		}
		s := t.table.slot(i)
		s.head = max(s.head, r.seq)
		s.bloom |= idBits(r.eventID)
		switch {
		case !judged.Valid:
			t.pending = append(t.pending, pendingEvent{seq: r.seq, m: m, id: r.id, eventID: r.eventID, typ: r.typ, source: r.source, time: r.time, arrived: r.arrived})
		case judged.Int64 > snapJudged:
			r.judged, r.state = judged.Int64, t.store.name(state.Int64)
			replay = append(replay, r)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lifecycle store %s: read the log: %w", t.store.path, err)
	}
	rows.Close()
	slices.SortFunc(replay, func(a, b logRow) int { return cmpInt(a.judged, b.judged) })
	for _, r := range replay {
		mi := t.mach[t.machines[r.entity]]
		i, _ := t.table.find(mi, r.id)
		s := t.table.slot(i)
		if r.state != "" && (s.state == 0 || t.stateName(s) != r.state) {
			s.state, s.entered = t.code(mi, r.state), r.time
			t.table.setLast(i, r.eventID)
		}
		s.updated = r.judged
		t.lastJudged = max(t.lastJudged, r.judged)
	}
	t.sinceSnapshot = len(replay)
	var maxSeq sql.NullInt64
	if err := t.store.db.QueryRowContext(ctx, `SELECT max(seq) FROM log`).Scan(&maxSeq); err != nil {
		return fmt.Errorf("lifecycle store %s: read the log: %w", t.store.path, err)
	}
	t.nextSeq = max(t.nextSeq, maxSeq.Int64+1, from)
	var kept sql.NullString
	if err := t.store.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'next_seq'`).Scan(&kept); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lifecycle store %s: read the next sequence: %w", t.store.path, err)
	}
	if n, err := strconv.ParseInt(kept.String, 10, 64); err == nil {
		t.nextSeq = max(t.nextSeq, n)
	}
	stuck, err := t.store.db.QueryContext(ctx, `SELECT entity, id FROM stuck`)
	if err != nil {
		return fmt.Errorf("lifecycle store %s: read stuck instances: %w", t.store.path, err)
	}
	defer stuck.Close()
	for stuck.Next() {
		var entity, id string
		if err := stuck.Scan(&entity, &id); err != nil {
			return fmt.Errorf("lifecycle store %s: read stuck instances: %w", t.store.path, err)
		}
		if m := t.machines[entity]; m != nil {
			if i, ok := t.table.find(t.mach[m], id); ok && t.table.slot(i).state != 0 {
				t.table.slot(i).stuck = true
			}
		}
	}
	return stuck.Err()
}

func (t *Tracker) snapshotDue() bool {
	every := t.cfg.SnapshotEvery
	if every < 0 || t.snapshotPath() == "" || t.snapshotting != nil || t.sinceSnapshot == 0 || time.Since(t.snapshotFailed) < time.Minute {
		return false
	}
	if every == 0 {
		every = max(1_000_000, t.table.n)
	}
	// The ten minutes are of the wall clock: they bound how much log a
	// start-up replays, whatever Config.Now says of the events.
	return t.sinceSnapshot >= every || time.Since(t.lastSnapshot) >= 10*time.Minute
}

// Snapshot writes a snapshot of every instance's state now (after the one
// being written, if any), and returns once it is durable. The tracker
// writes one now and then by itself; a start-up replays only the log
// after the latest.
func (t *Tracker) Snapshot(ctx context.Context) error {
	t.mu.Lock()
	for t.snapshotting != nil {
		ch := t.snapshotting
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("lifecycle snapshot: %w", ctx.Err())
		}
		t.mu.Lock()
	}
	if t.store == nil || t.snapshotPath() == "" {
		t.mu.Unlock()
		return nil
	}
	crash, err := t.beginSnapshot()
	t.mu.Unlock()
	if err != nil {
		return err
	}
	return t.endSnapshot(crash)
}

// beginSnapshot writes the table into the snapshot's .tmp file; the
// caller holds t.mu and, on success, calls endSnapshot with crash.
func (t *Tracker) beginSnapshot() (crash func(string) error, err error) {
	h := snapshotHeader{judged: t.lastJudged, from: t.nextSeq}
	for _, p := range t.pending {
		h.from = min(h.from, p.seq)
	}
	if err := t.writeSnapshot(t.snapshotPath(), h, t.crash); err != nil {
		t.snapshotFailed = time.Now()
		return nil, err
	}
	t.snapshotting, t.sinceSnapshot, t.lastSnapshot = make(chan struct{}), 0, time.Now()
	t.snapWG.Add(1)
	return t.crash, nil
}

// endSnapshot makes the snapshot durable; it does not need t.mu.
func (t *Tracker) endSnapshot(crash func(string) error) error {
	defer t.snapWG.Done()
	err := finishSnapshot(t.snapshotPath(), crash)
	t.mu.Lock()
	close(t.snapshotting)
	t.snapshotting = nil
	if err != nil {
		t.snapshotFailed = time.Now()
	}
	t.mu.Unlock()
	return err
}
