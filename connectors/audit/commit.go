package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
)

// A SQLite log has one writer at a time, and a commit costs a part that
// does not depend on its size: the pages it changed at the ends of the
// table and its indexes (written whole to the write-ahead log), the sync
// of the log, the transaction. Commits of many events cost less per event
// than many commits of few. The runtime calls Write concurrently (up to
// the sink's concurrency); one goroutine commits the Writes that wait
// together, each Write's events still all or none. As the runtime hands
// out Writes one after the other, the committer waits a moment for more
// while they come (lingerGap after the last, lingerMax in all, until the
// group has lingerRows events): at once it would commit about 85 events
// at a time, 1.3 Writes, from the embedded stream; waiting for more than
// the runtime holds at once (its window of 512 events) would only idle.

// maxGroupRows is the most events one group commit takes: enough for the
// runtime's default 16 Writes of 64, few enough to keep a commit short.
const maxGroupRows = 2048

// lingerRows is the size of a group the committer commits without
// waiting for more Writes.
const lingerRows = 256

// lingerMax is the longest the committer waits for more Writes after the
// first of a group: what the group commit may add to a Write's latency.
const lingerMax = time.Millisecond

// lingerGap is the longest the committer waits for the next Write.
const lingerGap = 200 * time.Microsecond

// writeReq is one Write waiting for its commit.
type writeReq struct {
	ds   []core.Delivery
	rows []any      // the column values of ds, len(columns) an event
	done chan error // buffered: the committer never waits for the Write
}

// write logs ds as one transaction, or as part of one: in PostgreSQL each
// Write commits its own, in SQLite the Writes waiting together commit
// together. It returns once they are committed, with the error that undid
// them otherwise, or promptly once ctx is done (the events may be logged
// all the same, which a retry leaves as they are).
func (d *DB) write(ctx context.Context, ds []core.Delivery, loggedAt time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("log events in %s: %w", d.where, err)
	}
	// The values are made here, by the Writes at once, rather than by
	// the one goroutine that commits.
	req := &writeReq{ds: ds, rows: d.rows(ds, loggedAt), done: make(chan error, 1)}
	if d.writes == nil {
		return d.insert(ctx, req)
	}
	select {
	case d.writes <- req:
	case <-ctx.Done():
		return fmt.Errorf("log events in %s: %w", d.where, ctx.Err())
	case <-d.closing:
		return fmt.Errorf("log events in %s: %w", d.where, errClosed)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("log events in %s: %w", d.where, ctx.Err())
	case <-d.closing:
		return fmt.Errorf("log events in %s: %w", d.where, errClosed)
	}
}

// errClosed says that the sink closed its log while a Write waited.
var errClosed = errors.New("the log is closed")

// gather adds to group the Writes that wait or come within lingerGap of
// each other and lingerMax in all, until it holds lingerRows events (or,
// with Writes waiting, maxGroupRows).
func (d *DB) gather(ctx context.Context, group []*writeReq) []*writeReq {
	rows := len(group[0].ds)
	var linger, gap *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
			gap.Stop()
		}
	}()
	for rows < maxGroupRows {
		select {
		case r := <-d.writes:
			group = append(group, r)
			rows += len(r.ds)
			continue
		default:
		}
		if rows >= lingerRows {
			return group
		}
		if linger == nil {
			linger, gap = time.NewTimer(lingerMax), time.NewTimer(lingerGap)
		} else {
			gap.Reset(lingerGap)
		}
		select {
		case r := <-d.writes:
			group = append(group, r)
			rows += len(r.ds)
		case <-linger.C:
			return group
		case <-gap.C:
			return group
		case <-ctx.Done():
			return group
		}
	}
	return group
}

// commits commits the queued Writes, those waiting together in one
// transaction, until ctx is done.
func (d *DB) commits(ctx context.Context) {
	for {
		var group []*writeReq
		select {
		case r := <-d.writes:
			group = append(group, r)
		case <-ctx.Done():
			return
		}
		group = d.gather(ctx, group)
		err := d.insert(ctx, group...)
		if err == nil || len(group) == 1 {
			for _, r := range group {
				r.done <- err
			}
			continue
		}
		// One Write may hold what the log refuses: each alone, so that
		// it fails only itself.
		for _, r := range group {
			r.done <- d.insert(ctx, r)
		}
	}
}
