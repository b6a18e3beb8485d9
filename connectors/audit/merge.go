package audit

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// merges merges the id runs of a level once mergeFanIn of them are
// there, woken by each new run, until ctx is done. A merge that fails is
// tried again after the next run or a pause.
func (d *DB) merges(ctx context.Context) {
	cleaned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.mergeWake:
		}
		if !cleaned {
			d.dropOrphans(ctx)
			cleaned = true
		}
		for {
			inputs := d.mergePlan()
			if inputs == nil {
				break
			}
			if err := d.merge(ctx, inputs); err != nil {
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("merging id runs of the audit log failed; trying again later", "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Second):
				}
			}
		}
	}
}

// mergePlan returns the runs of the lowest level that has mergeFanIn of
// them, oldest first; nil when no level has.
func (d *DB) mergePlan() []*run {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	byLevel := map[int][]*run{}
	for _, r := range d.idx.runs {
		byLevel[r.level] = append(byLevel[r.level], r)
	}
	levels := make([]int, 0, len(byLevel))
	for l := range byLevel {
		levels = append(levels, l)
	}
	slices.Sort(levels)
	for _, l := range levels {
		if rs := byLevel[l]; len(rs) >= mergeFanIn {
			return rs[:mergeFanIn]
		}
	}
	return nil
}

// dropOrphans drops the run tables the catalog does not name: those of
// merges a crash or Close cut short.
func (d *DB) dropOrphans(ctx context.Context) {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	live := map[int64]bool{}
	for _, r := range d.idx.runs {
		live[r.n] = true
	}
	for _, n := range d.runTables(ctx) {
		if !live[n] {
			_, _ = d.w().ExecContext(ctx, `DROP TABLE IF EXISTS `+d.runTable(n))
		}
	}
}

// merge writes the ids of inputs, in order, to a new run, leaving out
// those below the oldest event the log still holds, mergeChunk ids a
// transaction; then, in one transaction, records the new run and drops
// inputs.
func (d *DB) merge(ctx context.Context, inputs []*run) error {
	var floor int64
	if err := d.db.QueryRowContext(ctx, `SELECT coalesce(min(seq), 0) FROM `+d.events).Scan(&floor); err != nil {
		return fmt.Errorf("find the oldest event of audit log %s: %w", d.where, err)
	}
	var total int64
	out := &run{}
	for _, r := range inputs {
		total += r.count
		out.upto = max(out.upto, r.upto)
	}
	d.writeMu.Lock()
	out.n = d.idx.nextRun
	d.idx.nextRun++
	d.writeMu.Unlock()
	dropped := false
	defer func() {
		if !dropped {
			d.writeMu.Lock()
			_, _ = d.w().ExecContext(context.Background(), `DROP TABLE IF EXISTS `+d.runTable(out.n))
			d.writeMu.Unlock()
		}
	}()
	// One SELECT merges the inputs (SQLite reads each in its key order
	// and merges them), from after the last id written.
	var b strings.Builder
	for i, r := range inputs {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT h, seq FROM " + d.runTable(r.n) + " WHERE (h, seq) > (?1, ?2) AND seq >= ?3")
	}
	b.WriteString(" ORDER BY 1, 2 LIMIT ?4")
	query := b.String()
	f := newBloom(int(total))
	after := entry{h: math.MinInt64, seq: -1}
	chunk := make([]entry, 0, mergeChunk)
	created := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk = chunk[:0]
		rows, err := d.db.QueryContext(ctx, query, after.h, after.seq, floor, mergeChunk)
		if err != nil {
			return fmt.Errorf("read id runs of audit log %s: %w", d.where, err)
		}
		for rows.Next() {
			var e entry
			if err := rows.Scan(&e.h, &e.seq); err != nil {
				rows.Close()
				return fmt.Errorf("read id runs of audit log %s: %w", d.where, err)
			}
			chunk = append(chunk, e)
			f.add(uint64(e.h))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read id runs of audit log %s: %w", d.where, err)
		}
		if err := d.mergeChunk(ctx, out.n, chunk, !created); err != nil {
			return err
		}
		created = true
		out.count += int64(len(chunk))
		if len(chunk) < mergeChunk {
			break
		}
		after = chunk[len(chunk)-1]
	}
	out.bloom = f
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	out.level = level(out.count, d.idx.runSize)
	tx, err := d.w().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin recording id run %d of audit log %s: %w", out.n, d.where, err)
	}
	defer tx.Rollback()
	if err := d.addRun(ctx, tx, out); err != nil {
		return err
	}
	gone := map[int64]bool{}
	for _, r := range inputs {
		gone[r.n] = true
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+d.catalog+` WHERE run = ?`, r.n); err != nil {
			return fmt.Errorf("remove id run %d from audit log %s: %w", r.n, d.where, err)
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+d.runTable(r.n)); err != nil {
			return fmt.Errorf("drop id run %d of audit log %s: %w", r.n, d.where, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit the merge into id run %d of audit log %s: %w", out.n, d.where, err)
	}
	dropped = true
	runs := d.idx.runs[:0:0]
	for _, r := range d.idx.runs {
		if !gone[r.n] {
			runs = append(runs, r)
		}
	}
	// The runs stay in the order of the seq they cover: lookups try the
	// newest first.
	d.idx.runs = append(runs, out)
	slices.SortFunc(d.idx.runs, func(a, b *run) int { return cmp.Compare(a.upto, b.upto) })
	for n := range gone {
		if st, ok := d.idx.probes[n]; ok {
			_ = st.Close()
			delete(d.idx.probes, n)
		}
	}
	return nil
}

// mergeChunk appends chunk to the table of run n in a transaction of its
// own, creating the table first when create.
func (d *DB) mergeChunk(ctx context.Context, n int64, chunk []entry, create bool) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	tx, err := d.w().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin writing id run %d of audit log %s: %w", n, d.where, err)
	}
	defer tx.Rollback()
	if create {
		if _, err := tx.ExecContext(ctx, d.runSchema(n)); err != nil {
			return fmt.Errorf("create id run %d of audit log %s: %w", n, d.where, err)
		}
	}
	if err := d.insertEntries(ctx, tx, n, chunk); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit id run %d of audit log %s: %w", n, d.where, err)
	}
	return nil
}
