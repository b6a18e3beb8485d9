package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// storeTx is one write transaction of the tracker.
type storeTx struct {
	tx *sql.Tx
	// stmts caches the transaction's prepared statements by text.
	stmts map[string]*sql.Stmt
}

// tx runs fn in a write transaction, committed when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*storeTx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	st := &storeTx{tx: tx, stmts: map[string]*sql.Stmt{}}
	defer func() {
		for _, p := range st.stmts {
			p.Close()
		}
	}()
	if err := fn(st); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

func (t *storeTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if p, ok := t.stmts[q]; ok {
		return p, nil
	}
	p, err := t.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = p
	return p, nil
}

// holdEvent stores p in the reordering window. ok is false when the
// window already holds the event.
func (t *storeTx) holdEvent(ctx context.Context, p pendingEvent, position string) (seq int64, ok bool, err error) {
	st, err := t.stmt(ctx, `INSERT INTO held(entity, id, event_id, type, source, time, position, arrived) VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
	if err != nil {
		return 0, false, err
	}
	res, err := st.ExecContext(ctx, p.m.Name(), p.id, p.eventID, p.typ, p.source, p.time, position, p.arrived)
	if err != nil {
		return 0, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, false, err
	}
	seq, err = res.LastInsertId()
	return seq, err == nil, err
}

// record moves a held event into its instance's timeline with its
// verdict. ok is false when the timeline already holds it (a redelivery of
// an event judged before): it is then only dropped from the window.
func (t *storeTx) record(ctx context.Context, p pendingEvent, verdict string) (ok bool, err error) {
	ins, err := t.stmt(ctx, `INSERT INTO timeline(entity, id, time, event_id, type, source, position, verdict)
		SELECT entity, id, time, event_id, type, source, position, ? FROM held WHERE seq = ? ON CONFLICT DO NOTHING`)
	if err != nil {
		return false, err
	}
	res, err := ins.ExecContext(ctx, verdict, p.seq)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	del, err := t.stmt(ctx, `DELETE FROM held WHERE seq = ?`)
	if err != nil {
		return false, err
	}
	if _, err := del.ExecContext(ctx, p.seq); err != nil {
		return false, err
	}
	return n == 1, nil
}

// instance is an instance's row.
type instance struct {
	state     string
	entered   int64
	lastEvent string
	stuck     bool
}

func (t *storeTx) instance(ctx context.Context, entity, id string) (instance, bool, error) {
	st, err := t.stmt(ctx, `SELECT state, entered_at, last_event, stuck FROM instances WHERE entity = ? AND id = ?`)
	if err != nil {
		return instance{}, false, err
	}
	var in instance
	var stuck int
	err = st.QueryRowContext(ctx, entity, id).Scan(&in.state, &in.entered, &in.lastEvent, &stuck)
	if errors.Is(err, sql.ErrNoRows) {
		return instance{}, false, nil
	}
	in.stuck = stuck == 1
	return in, err == nil, err
}

func (t *storeTx) putInstance(ctx context.Context, entity, id string, in instance, now int64, deadline *int64) error {
	st, err := t.stmt(ctx, `INSERT INTO instances(entity, id, state, entered_at, last_event, updated_at, deadline, stuck) VALUES(?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(entity, id) DO UPDATE SET state = excluded.state, entered_at = excluded.entered_at, last_event = excluded.last_event,
		updated_at = excluded.updated_at, deadline = excluded.deadline, stuck = excluded.stuck`)
	if err != nil {
		return err
	}
	stuck := 0
	if in.stuck {
		stuck = 1
	}
	var d any
	if deadline != nil {
		d = *deadline
	}
	_, err = st.ExecContext(ctx, entity, id, in.state, in.entered, in.lastEvent, now, d, stuck)
	return err
}

type overdueInstance struct {
	entity, id string
	inst       instance
}

// overdue returns up to limit instances whose deadline has passed and that
// were not reported stuck.
func (t *storeTx) overdue(ctx context.Context, now int64, limit int) ([]overdueInstance, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT entity, id, state, entered_at, last_event FROM instances WHERE deadline IS NOT NULL AND stuck = 0 AND deadline <= ? ORDER BY deadline LIMIT ?`, now, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []overdueInstance
	for rows.Next() {
		var o overdueInstance
		if err := rows.Scan(&o.entity, &o.id, &o.inst.state, &o.inst.entered, &o.inst.lastEvent); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

func (t *storeTx) markStuck(ctx context.Context, entity, id string) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE instances SET stuck = 1 WHERE entity = ? AND id = ?`, entity, id)
	return err
}

// prune deletes up to 10,000 instances of entity that entered one of
// final (by event time) before cutoff, with their timelines.
func (t *storeTx) prune(ctx context.Context, entity string, final []string, cutoff int64) error {
	marks := strings.TrimSuffix(strings.Repeat("?,", len(final)), ",")
	args := []any{entity}
	for _, f := range final {
		args = append(args, f)
	}
	args = append(args, cutoff)
	sel := `SELECT id FROM instances WHERE entity = ? AND state IN (` + marks + `) AND entered_at < ? LIMIT 10000`
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM timeline WHERE entity = ? AND id IN (`+sel+`)`, append([]any{entity}, args...)...); err != nil {
		return err
	}
	_, err := t.tx.ExecContext(ctx, `DELETE FROM instances WHERE entity = ? AND id IN (`+sel+`)`, append([]any{entity}, args...)...)
	return err
}

// stuckCounts counts the instances reported stuck, per entity and state.
func (s *Store) stuckCounts(ctx context.Context) (map[[2]string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT entity, state, count(*) FROM instances WHERE stuck = 1 GROUP BY entity, state`)
	if err != nil {
		return nil, fmt.Errorf("count stuck instances: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]int{}
	for rows.Next() {
		var e, st string
		var n int
		if err := rows.Scan(&e, &st, &n); err != nil {
			return nil, err
		}
		out[[2]string{e, st}] = n
	}
	return out, rows.Err()
}

// loadPending returns the events stored but not yet judged, in arrival
// order; those of entities no longer declared are left aside.
func (s *Store) loadPending(ctx context.Context, machines map[string]*Machine) ([]pendingEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, entity, id, event_id, type, source, time, arrived FROM held ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("lifecycle store %s: read held events: %w", s.path, err)
	}
	defer rows.Close()
	var out []pendingEvent
	for rows.Next() {
		var p pendingEvent
		var entity string
		if err := rows.Scan(&p.seq, &entity, &p.id, &p.eventID, &p.typ, &p.source, &p.time, &p.arrived); err != nil {
			return nil, fmt.Errorf("lifecycle store %s: read held events: %w", s.path, err)
		}
		if p.m = machines[entity]; p.m != nil {
			out = append(out, p)
		}
	}
	return out, rows.Err()
}
