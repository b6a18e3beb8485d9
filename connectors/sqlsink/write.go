package sqlsink

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// row is one delivery made into a statement's values.
type row struct {
	// i is the delivery's index in the Write.
	i   int
	pk  string // the event's partition key
	key string // the row's table key (upsert) or event id (insert)
	del bool
	// args are the values of the table's columns, in order; for a
	// delete, the key's values and then the version.
	args []any
}

// batch is the state of one Write.
type batch struct {
	ds  []core.Delivery
	out []core.Result
	// done marks the results that are final (failed or retried alone);
	// the others are delivered once the transaction commits.
	done []bool
	// held are the partition keys with a delivery not delivered: their
	// later deliveries are not attempted.
	held map[string]bool
}

// hold gives delivery i its result and holds its key.
func (b *batch) hold(i int, r core.Result) {
	b.out[i], b.done[i] = r, true
	b.held[b.ds[i].Event.PartitionKey] = true
}

// Write writes ds in one transaction, in order: the rows of several
// deliveries share a statement, and a statement a bad row fails is
// written again row by row, so that the bad row alone is refused
// (StatusFailed, for the dead-letter topic) and the others commit. A
// value an expression cannot give, or the column cannot take, is refused
// the same way. Once a delivery of a partition key is not delivered, the
// later ones of that key are not attempted (StatusRetry, no error). When
// the transaction cannot commit every delivery not refused is retried,
// the first of each key with the error. Writes waiting together share a
// transaction (see committers), each keeping its own statements and
// outcomes. Write is safe for concurrent use; when ctx is done it returns
// at once, every delivery not refused retried (its rows may still be
// committed: a redelivery leaves them as they are).
func (s *Sink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	b := &batch{ds: ds, out: make([]core.Result, len(ds)), done: make([]bool, len(ds)), held: map[string]bool{}}
	if len(ds) == 0 {
		return b.out
	}
	s.mu.Lock()
	c := s.commit
	s.mu.Unlock()
	if c == nil {
		b.retry(fmt.Errorf("sql sink %q is not open", s.name))
		return b.out
	}
	if err := ctx.Err(); err != nil {
		b.retry(fmt.Errorf("sql sink %q: %w", s.name, err))
		return b.out
	}
	rows := s.rows(b)
	if len(rows) == 0 {
		return b.out
	}
	// What Write answers if it stops waiting: the committer goes on
	// changing b.
	early := &batch{ds: ds, out: slices.Clone(b.out), done: slices.Clone(b.done), held: maps.Clone(b.held)}
	j := &job{ctx: ctx, b: b, rows: rows, done: make(chan error, 1)}
	select {
	case c.jobs <- j:
	case <-c.quit:
		b.retry(fmt.Errorf("sql sink %q is closing", s.name))
		return b.out
	case <-ctx.Done():
		b.retry(fmt.Errorf("sql sink %q: %w", s.name, ctx.Err()))
		return b.out
	}
	select {
	case err := <-j.done:
		if err != nil {
			b.retry(err)
			return b.out
		}
	case <-ctx.Done():
		early.retry(fmt.Errorf("sql sink %q: gave up waiting for the transaction: %w", s.name, ctx.Err()))
		return early.out
	}
	for i := range b.out {
		if !b.done[i] {
			b.out[i] = core.Result{Status: core.StatusDelivered}
		}
	}
	return b.out
}

// retry makes every result that is not final a retry: the first delivery
// of each key not held carries err, as core.Sink asks.
func (b *batch) retry(err error) {
	seen := map[string]bool{}
	for i, d := range b.ds {
		if b.done[i] {
			continue
		}
		pk := d.Event.PartitionKey
		b.out[i] = core.Result{Status: core.StatusRetry}
		if !b.held[pk] && !seen[pk] {
			b.out[i].Err = err
		}
		seen[pk] = true
	}
}

// rows evaluates the columns of each delivery. A delivery whose values
// cannot be made is refused, and its key held.
func (s *Sink) rows(b *batch) []*row {
	env := s.envs.Get().(*rules.EventEnv)
	defer func() {
		env.Reset(nil, "")
		s.envs.Put(env)
	}()
	n := len(s.table.cols)
	out := make([]*row, 0, len(b.ds))
	vals := make([]any, n)
	// The rows and their values, in two allocations for the batch.
	slab, args := make([]row, len(b.ds)), make([]any, len(b.ds)*n)
	for i, d := range b.ds {
		if b.held[d.Event.PartitionKey] {
			b.out[i], b.done[i] = core.Result{Status: core.StatusRetry}, true
			continue
		}
		env.Reset(d.Event, s.name)
		fast := s.paths != nil && s.paths.read(d.Event, vals)
		r := &slab[i]
		r.args = args[i*n : (i+1)*n : (i+1)*n]
		err := s.row(env, r, i, d, vals, fast)
		if err != nil {
			b.hold(i, core.Result{Status: core.StatusFailed, Err: err})
			continue
		}
		out = append(out, r)
	}
	return out
}

// row evaluates one delivery's values into r, whose args have room for
// a value per column. When fast, vals holds the values of the columns
// s.paths reads.
func (s *Sink) row(env *rules.EventEnv, r *row, i int, d core.Delivery, vals []any, fast bool) error {
	r.i, r.pk = i, d.Event.PartitionKey
	if s.del != nil {
		del, err := s.del.Holds(env)
		if err != nil {
			return fmt.Errorf("sql sink %q: %w", s.name, err)
		}
		r.del = del
	}
	if r.del {
		keys := s.table.key
		r.args = make([]any, 0, len(keys)+1)
		for _, c := range append(keys[:len(keys):len(keys)], s.table.version) {
			v, err := s.value(env, c, d, vals, fast)
			if err != nil {
				return err
			}
			r.args = append(r.args, v)
		}
		return nil
	}
	for c := range s.table.cols {
		v, err := s.value(env, c, d, vals, fast)
		if err != nil {
			return err
		}
		r.args[c] = v
	}
	if len(s.table.key) == 1 {
		// One key column: its text is the key as it is.
		if v, ok := r.args[s.table.key[0]].(string); ok {
			r.key = v
			return nil
		}
	}
	var key strings.Builder
	for _, c := range s.table.key {
		if r.args[c] == nil {
			return fmt.Errorf("sql sink %q: key column %q is null: the key must identify the row", s.name, s.table.cols[c].name)
		}
		if v, ok := r.args[c].(string); ok {
			key.WriteString(v)
			key.WriteByte(0)
		} else {
			fmt.Fprintf(&key, "%v\x00", r.args[c])
		}
	}
	r.key = key.String()
	return nil
}

// value evaluates column c of delivery d and converts it for the column.
func (s *Sink) value(env *rules.EventEnv, c int, d core.Delivery, vals []any, fast bool) (any, error) {
	col := &s.table.cols[c]
	if c == s.table.id {
		return d.Event.ID, nil
	}
	var v any
	if fast && s.pathCol[c] {
		v = vals[c]
	} else {
		var err error
		if v, err = s.progs[c].EvalEnv(env); err != nil {
			return nil, fmt.Errorf("sql sink %q: column %q: %w", s.name, col.name, err)
		}
	}
	v, err := s.dialect.convert(col.typ, v)
	if err != nil {
		return nil, fmt.Errorf("sql sink %q: column %q (%s): the value %w", s.name, col.name, col.typ, err)
	}
	return v, nil
}

// errCareful says a statement failed in a transaction with no savepoint
// that would undo it alone: the transaction must start over, with them.
var errCareful = errors.New("a statement failed outside a savepoint")

// statements writes rows, in order, as statements of up to
// rows_per_statement rows that never share a key; a delete is a statement
// of its own.
func (s *Sink) statements(ctx context.Context, tx *sql.Tx, b *batch, rows []*row, careful bool) error {
	limit := s.dialect.rowsPerStatement(&s.table, s.cfg.StmtRows)
	var chunk []*row
	keys := map[string]bool{}
	flush := func() error {
		err := s.exec(ctx, tx, b, chunk, careful)
		chunk = chunk[:0]
		clear(keys)
		return err
	}
	for _, r := range rows {
		if b.held[r.pk] {
			b.out[r.i], b.done[r.i] = core.Result{Status: core.StatusRetry}, true
			continue
		}
		if r.del || keys[r.key] || len(chunk) == limit {
			if err := flush(); err != nil {
				return err
			}
		}
		if r.del {
			if err := s.exec(ctx, tx, b, []*row{r}, careful); err != nil {
				return err
			}
			continue
		}
		chunk = append(chunk, r)
		keys[r.key] = true
	}
	return flush()
}

// exec runs the statement of rows (several writes, or one delete). When
// it fails for a bad row, the rows are written again one by one, each
// refused or retried alone; it returns an error only when the
// transaction is lost.
func (s *Sink) exec(ctx context.Context, tx *sql.Tx, b *batch, rows []*row, careful bool) error {
	var live []*row
	for _, r := range rows {
		if b.held[r.pk] {
			b.out[r.i], b.done[r.i] = core.Result{Status: core.StatusRetry}, true
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return nil
	}
	err := s.guarded(ctx, tx, live, careful)
	if err == nil {
		return nil
	}
	if !careful {
		if s.dialect.classify(err) == lost || ctx.Err() != nil {
			return err
		}
		return errCareful
	}
	if len(live) == 1 {
		return s.outcome(b, live[0], err)
	}
	for _, r := range live {
		if b.held[r.pk] {
			b.out[r.i], b.done[r.i] = core.Result{Status: core.StatusRetry}, true
			continue
		}
		if err := s.guarded(ctx, tx, []*row{r}, true); err != nil {
			if err := s.outcome(b, r, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// outcome gives a row the result of its statement's error, or returns
// the error when the transaction is lost.
func (s *Sink) outcome(b *batch, r *row, err error) error {
	var sErr *stmtError
	if !errors.As(err, &sErr) {
		return err
	}
	switch sErr.verdict {
	case refused:
		b.hold(r.i, core.Result{Status: core.StatusFailed, Err: sErr.err, Response: sErr.err.Error()})
	case transient:
		b.hold(r.i, core.Result{Status: core.StatusRetry, Err: sErr.err})
	default:
		return sErr.err
	}
	return nil
}

// stmtError is a statement that failed and was undone alone, and what
// that means for its rows.
type stmtError struct {
	verdict verdict
	err     error
}

func (e *stmtError) Error() string { return e.err.Error() }

// guarded runs the statement of rows, under a savepoint where a failed
// statement would abort the transaction. A failure it undid alone is a
// *stmtError; any other error means the transaction is lost.
func (s *Sink) guarded(ctx context.Context, tx *sql.Tx, rows []*row, careful bool) error {
	d := s.dialect
	if !careful {
		query, args := s.statement(rows)
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	if d.savepoints {
		if _, err := tx.ExecContext(ctx, d.savepoint()); err != nil {
			return fmt.Errorf("sql sink %q: savepoint: %w", s.name, err)
		}
	}
	query, args := s.statement(rows)
	_, err := tx.ExecContext(ctx, query, args...)
	if err == nil {
		if d.savepoints && d.driver == DriverPostgres {
			// Released, so that a long batch does not pile up
			// subtransactions.
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT tributary_row"); err != nil {
				return fmt.Errorf("sql sink %q: release savepoint: %w", s.name, err)
			}
		}
		return nil
	}
	what := "write"
	if rows[0].del {
		what = "delete"
	}
	err = fmt.Errorf("sql sink %q: %s %d rows of table %s: %w", s.name, what, len(rows), s.cfg.Table, err)
	v := d.classify(err)
	if ctx.Err() != nil || v == lost {
		return err
	}
	if d.savepoints {
		if _, rbErr := tx.ExecContext(ctx, d.rollbackTo()); rbErr != nil {
			return errors.Join(err, rbErr)
		}
	} else if v != refused {
		return err
	}
	return &stmtError{verdict: v, err: err}
}

// statement returns the text and arguments of the statement of rows.
func (s *Sink) statement(rows []*row) (string, []any) {
	if rows[0].del {
		return s.dialect.remove(&s.table), rows[0].args
	}
	if s.dialect.driver == DriverPostgres {
		// unnest: one text array per column.
		args := make([]any, len(s.table.cols))
		for c := range s.table.cols {
			col := make([]*string, len(rows))
			for i, r := range rows {
				col[i] = pgText(r.args[c])
			}
			args[c] = col
		}
		return s.stmt, args
	}
	args := make([]any, 0, len(rows)*len(s.table.cols))
	for _, r := range rows {
		args = append(args, r.args...)
	}
	return s.dialect.write(&s.table, len(rows)), args
}
