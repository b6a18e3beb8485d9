package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// idReader finds events by id in a SQLite log for Search and Holds, in
// the process that writes the log or in another one (`tributary events
// search` beside the running sidecar): before each lookup it reads what
// changed since the last one, the runs of the catalog (their filters once)
// and the ids logged above them, so that it follows the writer's flushes
// and merges.
type idReader struct {
	mu      sync.Mutex
	runs    map[int64]*run
	order   []*run
	covered int64
	last    int64 // the highest seq read into tail
	tail    map[string]int64
}

// byRuns reports whether the log's ids are in runs: a SQLite log but
// one of the layout before them.
func (d *DB) byRuns() bool { return !d.pg && !d.legacy }

// errRunGone says that a merge dropped a run between the reading of the
// catalog and a lookup in it.
var errRunGone = errors.New("the id run is gone")

// find returns the seq of the event with id in the log, and whether the
// log holds one.
func (d *DB) find(ctx context.Context, id string) (int64, bool, error) {
	r := d.reader
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := d.syncReader(ctx); err != nil {
			return 0, false, err
		}
		seq, ok, err := d.findLocked(ctx, id)
		if errors.Is(err, errRunGone) && attempt < 3 {
			continue
		}
		return seq, ok, err
	}
}

// findLocked is find once the reader is up to date. r.mu is held.
func (d *DB) findLocked(ctx context.Context, id string) (int64, bool, error) {
	r := d.reader
	var cands []int64
	if seq, ok := r.tail[id]; ok {
		cands = append(cands, seq)
	}
	h := idHash(id)
	for i := len(r.order) - 1; i >= 0; i-- {
		run := r.order[i]
		if !run.bloom.has(h) {
			continue
		}
		rows, err := d.db.QueryContext(ctx, `SELECT seq FROM `+d.runTable(run.n)+` WHERE h = ?`, int64(h))
		if err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return 0, false, errRunGone
			}
			return 0, false, fmt.Errorf("look for event %s in id run %d of audit log %s: %w", id, run.n, d.where, err)
		}
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return 0, false, fmt.Errorf("look for event %s in audit log %s: %w", id, d.where, err)
			}
			cands = append(cands, seq)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, false, fmt.Errorf("look for event %s in audit log %s: %w", id, d.where, err)
		}
	}
	for _, seq := range cands {
		var n int
		if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM `+d.events+` WHERE seq = ? AND id = ?`, seq, id).Scan(&n); err != nil {
			return 0, false, fmt.Errorf("look for event %s in audit log %s: %w", id, d.where, err)
		}
		if n > 0 {
			return seq, true, nil
		}
	}
	return 0, false, nil
}

// syncReader brings the reader up to date with the log. r.mu is held.
func (d *DB) syncReader(ctx context.Context) error {
	r := d.reader
	runs, err := d.readRuns(ctx, d.db, r.runs)
	if err != nil {
		return err
	}
	r.runs = make(map[int64]*run, len(runs))
	covered := int64(0)
	for _, run := range runs {
		r.runs[run.n] = run
		covered = max(covered, run.upto)
	}
	r.order = runs
	if covered > r.covered {
		for id, seq := range r.tail {
			if seq <= covered {
				delete(r.tail, id)
			}
		}
		r.covered = covered
	}
	rows, err := d.db.QueryContext(ctx, `SELECT seq, id FROM `+d.events+` WHERE seq > ? ORDER BY seq`, max(r.last, r.covered))
	if err != nil {
		return fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq int64
			id  string
		)
		if err := rows.Scan(&seq, &id); err != nil {
			return fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
		}
		r.tail[id] = seq
		r.last = seq
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
	}
	return nil
}
