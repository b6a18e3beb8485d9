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
	buf := make([]byte, 0, 128*len(rows))
	recs := make([][]byte, len(rows))
	for k := range rows {
		start := len(buf)
		buf = encodeRecord(buf, &rows[k])
		recs[k] = buf[start:len(buf):len(buf)]
	}
	return s.insertMany(ctx, tx, s.insert, s.insertOne, len(rows), func(args []any, k int) []any {
		return append(args, rows[k].seq, rows[k].prev, recs[k])
	})
}

// insertMany inserts n rows, insertRows at a time through many and the
// rest through one; add appends the values of row k to args.
func (s *Store) insertMany(ctx context.Context, tx *sql.Tx, many, one *sql.Stmt, n int, add func(args []any, k int) []any) error {
	var args []any
	k := 0
	if n >= insertRows {
		st := tx.StmtContext(ctx, many)
		defer st.Close()
		for ; k+insertRows <= n; k += insertRows {
			args = args[:0]
			for i := k; i < k+insertRows; i++ {
				args = add(args, i)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return err
			}
		}
	}
	if k == n {
		return nil
	}
	st := tx.StmtContext(ctx, one)
	defer st.Close()
	for ; k < n; k++ {
		if _, err := st.ExecContext(ctx, add(args[:0], k)...); err != nil {
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

// setJudged records verdicts.
func (s *Store) setJudged(ctx context.Context, tx *sql.Tx, js []judged) error {
	codes := make([]int64, 2*len(js))
	for k, j := range js {
		var err error
		if codes[2*k], err = s.code(ctx, tx, j.verdict); err != nil {
			return err
		}
		if codes[2*k+1], err = s.code(ctx, tx, j.state); err != nil {
			return err
		}
	}
	return s.insertMany(ctx, tx, s.judge, s.judgeOne, len(js), func(args []any, k int) []any {
		return append(args, js[k].seq, js[k].order, codes[2*k], codes[2*k+1])
	})
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
		if _, err := tx.ExecContext(ctx, `DELETE FROM verdicts WHERE seq = ?`, seq); err != nil {
			return err
		}
		seq = prev
	}
	return nil
}
