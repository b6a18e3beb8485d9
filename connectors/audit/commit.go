package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
)

// A SQLite log has one writer at a time, and a commit writes every page
// it changed whole: the random event ids put nearly every event of a
// commit on a page of the id index of its own, so commits of many events
// cost less per event than many commits of few. The runtime calls Write
// concurrently (up to the sink's concurrency); one goroutine commits the
// Writes that wait together, each Write's events still all or none.

// maxGroupRows is the most events one group commit takes: enough for the
// runtime's default 16 Writes of 64, few enough to keep a commit short.
const maxGroupRows = 2048

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
		rows := len(group[0].ds)
	more:
		for rows < maxGroupRows {
			select {
			case r := <-d.writes:
				group = append(group, r)
				rows += len(r.ds)
			default:
				break more
			}
		}
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
