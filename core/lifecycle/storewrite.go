package lifecycle

import (
	"context"
	"database/sql"
	"errors"
)

// tx runs fn in a write transaction, committed when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// appendRows appends rows to the log, insertRows to a statement.
func (s *Store) appendRows(ctx context.Context, tx *sql.Tx, rows []logRow) error {
	args := make([]any, 0, insertRows*10)
	add := func(r *logRow) {
		args = append(args, r.seq, r.entity, r.id, r.time, r.eventID, r.typ, r.source, r.position, r.prev, r.arrived)
	}
	if len(rows) >= insertRows {
		st := tx.StmtContext(ctx, s.insert)
		defer st.Close()
		for len(rows) >= insertRows {
			args = args[:0]
			for k := range insertRows {
				add(&rows[k])
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return err
			}
			rows = rows[insertRows:]
		}
	}
	if len(rows) == 0 {
		return nil
	}
	st := tx.StmtContext(ctx, s.insertOne)
	defer st.Close()
	for k := range rows {
		args = args[:0]
		add(&rows[k])
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// judged is the verdict on one log row.
type judged struct {
	seq, order     int64
	verdict, state string
}

// setJudged records verdicts in the log.
func (s *Store) setJudged(ctx context.Context, tx *sql.Tx, js []judged) error {
	st := tx.StmtContext(ctx, s.judge)
	defer st.Close()
	for _, j := range js {
		if _, err := st.ExecContext(ctx, j.order, j.verdict, j.state, j.seq); err != nil {
			return err
		}
	}
	return nil
}

// setStuck records that an instance was reported stuck (or, with stuck
// false, that it left the state it was stuck in).
func setStuck(ctx context.Context, tx *sql.Tx, entity, id string, stuck bool) error {
	q := `DELETE FROM stuck WHERE entity = ? AND id = ?`
	if stuck {
		q = `INSERT INTO stuck(entity, id) VALUES(?, ?) ON CONFLICT DO NOTHING`
	}
	_, err := tx.ExecContext(ctx, q, entity, id)
	return err
}

// deleteChain deletes an instance's log rows from head down its chain.
func deleteChain(ctx context.Context, tx *sql.Tx, head int64) error {
	for seq := head; seq > 0; {
		var prev int64
		err := tx.QueryRowContext(ctx, `DELETE FROM log WHERE seq = ? RETURNING prev`, seq).Scan(&prev)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		seq = prev
	}
	return nil
}
