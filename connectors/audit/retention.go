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
func (d *DB) prune(ctx context.Context, cutoff time.Time) (int64, error) {
	key := "rowid"
	if d.pg {
		key = "id"
	}
	var b strings.Builder
	b.WriteString("DELETE FROM " + d.events + " WHERE " + key + " IN (SELECT " + key + " FROM " + d.events + " WHERE logged_at < ")
	d.param(&b, 1)
	b.WriteString(" ORDER BY logged_at LIMIT " + strconv.Itoa(pruneBatch) + ")")
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
	res, err := d.db.ExecContext(ctx, stmt, d.timeArg(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
