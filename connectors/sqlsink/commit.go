package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// job is one Write's rows waiting to be written.
type job struct {
	ctx  context.Context
	b    *batch
	rows []*row
	// done receives nil once the job's rows are committed, or why not.
	done chan error
}

// committers write the jobs of concurrent Writes, up to max_open_conns
// transactions at once. A committer takes every job waiting when it
// starts a transaction and writes them all in it, each job's rows in
// statements of their own, so that Writes that wait together share one
// commit (one flush of the database's log) instead of queueing for a
// connection each.
type committers struct {
	jobs chan *job
	quit chan struct{}
	wg   sync.WaitGroup
}

// startCommitters starts n committers writing to db.
func (s *Sink) startCommitters(db *sql.DB, n int) *committers {
	c := &committers{jobs: make(chan *job), quit: make(chan struct{})}
	for range n {
		c.wg.Go(func() { s.commitLoop(db, c) })
	}
	return c
}

// stop ends the committers once their transactions end.
func (c *committers) stop() {
	close(c.quit)
	c.wg.Wait()
}

// maxGroupRows bounds the rows of the jobs one transaction takes.
const maxGroupRows = 4096

func (s *Sink) commitLoop(db *sql.DB, c *committers) {
	for {
		var group []*job
		select {
		case j := <-c.jobs:
			group = append(group, j)
		case <-c.quit:
			return
		}
		n := len(group[0].rows)
	gather:
		for n < maxGroupRows {
			select {
			case j := <-c.jobs:
				group = append(group, j)
				n += len(j.rows)
			default:
				break gather
			}
		}
		if s.copier.stmt != "" && n < copyGroupRows {
			// COPY's cost is mostly per statement and commit: wait a
			// little for the Writes on their way.
			t := time.NewTimer(copyLinger)
		linger:
			for n < copyGroupRows {
				select {
				case j := <-c.jobs:
					group = append(group, j)
					n += len(j.rows)
				case <-t.C:
					break linger
				}
			}
			t.Stop()
		}
		s.commitGroup(db, group)
	}
}

// copyGroupRows and copyLinger: a committer on the COPY path waits up to
// copyLinger for more Writes while its group has fewer rows.
const (
	copyGroupRows = 256
	copyLinger    = time.Millisecond
)

// commitGroup writes the jobs of group in one transaction and tells each
// the outcome. A job whose Write gave up (its context done) before the
// transaction began is left out; the transaction is cancelled when every
// job's context is done.
func (s *Sink) commitGroup(db *sql.DB, group []*job) {
	live := group[:0]
	for _, j := range group {
		if err := j.ctx.Err(); err != nil {
			j.done <- err
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var waiting atomic.Int64
	waiting.Store(int64(len(live)))
	for _, j := range live {
		stop := context.AfterFunc(j.ctx, func() {
			if waiting.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	err := s.applyGroup(ctx, db, live)
	for _, j := range live {
		j.done <- err
	}
}

// applyGroup writes the jobs' rows in one transaction: PostgreSQL's COPY
// first where it applies (see copy.go), else, or when it misses,
// statements. It returns an error when the rows are not committed.
func (s *Sink) applyGroup(ctx context.Context, db *sql.DB, jobs []*job) error {
	if s.copyable(jobs) && s.copier.try() {
		err := s.copyGroup(ctx, db, jobs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
	run := func(careful bool) (*sql.Tx, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("sql sink %q: begin a transaction: %w", s.name, err)
		}
		for _, j := range jobs {
			if err := s.statements(ctx, tx, j.b, j.rows, careful); err != nil {
				_ = tx.Rollback()
				return nil, err
			}
		}
		return tx, nil
	}
	// First without savepoints, which cost two round trips a statement;
	// when a statement fails, the transaction starts over with them, so
	// that the failing rows are found and the others commit.
	tx, err := run(!s.dialect.savepoints)
	if errors.Is(err, errCareful) {
		tx, err = run(true)
	}
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sql sink %q: commit: %w", s.name, err)
	}
	return nil
}
