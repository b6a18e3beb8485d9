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
// make, waits for that one.)
func (d *DB) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	var b strings.Builder
	if d.pg {
		b.WriteString("DELETE FROM " + d.events + " WHERE id IN (SELECT id FROM " + d.events + " WHERE logged_at < ")
		d.param(&b, 1)
		b.WriteString(" ORDER BY logged_at LIMIT " + strconv.Itoa(pruneBatch) + ")")
	} else {
		// The first pruneBatch events, and the first of them logged at
		// or after cutoff: those before it go.
		e := d.events
		b.WriteString("WITH head AS (SELECT seq, logged_at FROM " + e + " ORDER BY seq LIMIT " + strconv.Itoa(pruneBatch) + "), " +
			"stop AS (SELECT coalesce(min(seq), 9223372036854775807) AS seq FROM head WHERE logged_at >= ?1) " +
			"DELETE FROM " + e + " WHERE seq < (SELECT seq FROM stop) AND seq <= (SELECT max(seq) FROM head)")
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

// pruneOnce runs one batch of prune.
func (d *DB) pruneOnce(ctx context.Context, stmt string, cutoff time.Time) (int64, error) {
	if !d.pg {
		d.writeMu.Lock()
		defer d.writeMu.Unlock()
	}
	res, err := d.w().ExecContext(ctx, stmt, d.timeArg(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
