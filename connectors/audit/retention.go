package audit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pruneBatch is the most events one DELETE removes, so that pruning a
// large backlog holds the writers up for short moments only.
const pruneBatch = 1000

// pruneRest is the pause between two batches of one pruning, in which
// the writers go first.
const pruneRest = 20 * time.Millisecond

// prune deletes the events logged before cutoff, pruneBatch at a time,
// until none is left or ctx is done, and returns how many it deleted.
//
// A SQLite log has no index of logged_at, one fewer for each event to
// update: as it takes events in the order they are logged, it deletes
// from its oldest seq up to the first event logged at or after cutoff.
// (An event logged before one with a lower seq, as a clock set back can
// make, waits for that one.) The entries of <prefix>subjects of the
// events it deletes go with them, in the same transaction.
func (d *DB) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	var b strings.Builder
	if d.pg {
		b.WriteString("DELETE FROM " + d.events + " WHERE id IN (SELECT id FROM " + d.events + " WHERE logged_at < ")
		d.param(&b, 1)
		b.WriteString(" ORDER BY logged_at LIMIT " + strconv.Itoa(pruneBatch) + ")")
	} else {
		// The first pruneBatch events, and the first of them logged at
		// or after cutoff: those before it go, up to the seq this
		// finds.
		e := d.events
		b.WriteString("WITH head AS (SELECT seq, logged_at FROM " + e + " ORDER BY seq LIMIT " + strconv.Itoa(pruneBatch) + ") " +
			"SELECT min((SELECT coalesce(min(seq), 9223372036854775807) FROM head WHERE logged_at >= ?1) - 1, (SELECT coalesce(max(seq), 0) FROM head))")
	}
	stmt := b.String()
	var total int64
	for {
		n, err := d.pruneOnce(ctx, stmt, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune audit log %s: %w", d.where, err)
		}
		if n < pruneBatch {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, nil
		case <-time.After(pruneRest):
		}
	}
}

// pruneOnce runs one batch of prune: in PostgreSQL stmt deletes it, in
// SQLite stmt finds the highest seq it deletes.
func (d *DB) pruneOnce(ctx context.Context, stmt string, cutoff time.Time) (int64, error) {
	if d.pg {
		res, err := d.w().ExecContext(ctx, stmt, d.timeArg(cutoff))
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	// Found before the transaction, which takes the write lock, so that
	// a pruning with nothing to delete takes none; only this goroutine
	// deletes events, and writeMu keeps the others out meanwhile.
	var upto int64
	if err := d.w().QueryRowContext(ctx, stmt, d.timeArg(cutoff)).Scan(&upto); err != nil {
		return 0, err
	}
	if upto <= 0 {
		return 0, nil
	}
	tx, err := d.w().BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if d.bySubjects {
		// The events below the id runs' have their entries there.
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+d.subjects+` WHERE (subject, time, seq) IN (SELECT subject, coalesce(time, ''), seq FROM `+d.events+` WHERE seq <= ? AND subject IS NOT NULL)`, upto); err != nil {
			return 0, err
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM `+d.events+` WHERE seq <= ?`, upto)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
