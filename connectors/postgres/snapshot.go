package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// snapshotReader reads the captured tables in key order, one chunk per
// call, inside one REPEATABLE READ transaction. When the replication slot
// was just created, the transaction imports the snapshot the slot exported,
// so the rows read are exactly those committed before the slot's
// consistent point, from which streaming starts.
type snapshotReader struct {
	conn   *pgxpool.Conn
	tx     pgx.Tx
	steps  []cdc.Step
	metas  map[string]*tableMeta
	at     string
	chunk  int
	types  *types
	outbox string
}

// begin opens the snapshot transaction, importing exported when set.
func (sr *snapshotReader) begin(ctx context.Context, pool *pgxpool.Pool, exported string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect for the snapshot: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Release()
		return fmt.Errorf("begin the snapshot transaction: %w", err)
	}
	if exported != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(exported, "'", "")+"'"); err != nil {
			_ = tx.Rollback(ctx)
			conn.Release()
			return fmt.Errorf("import the slot's snapshot %s: %w", exported, err)
		}
	}
	sr.conn, sr.tx = conn, tx
	return nil
}

// done reports whether every table was read.
func (sr *snapshotReader) done() bool { return len(sr.steps) == 0 }

// next reads the next chunk. It returns no changes and no error once every
// table is read.
func (sr *snapshotReader) next(ctx context.Context) ([]core.Change, error) {
	for len(sr.steps) > 0 {
		st := &sr.steps[0]
		meta := sr.metas[st.Table]
		if meta == nil || meta.qualified() == sr.outbox {
			sr.steps = sr.steps[1:]
			continue
		}
		chs, last, err := sr.chunkOf(ctx, meta, st.After)
		if err != nil {
			return nil, err
		}
		if len(chs) < sr.chunk {
			sr.steps = sr.steps[1:]
		} else {
			st.After = last
		}
		if len(chs) > 0 {
			return chs, nil
		}
	}
	return nil, nil
}

// keyCols returns the columns the table is paginated by: its key, or ctid
// for a table without one (REPLICA IDENTITY FULL).
func keyCols(meta *tableMeta) (names, types []string) {
	if len(meta.key) == 0 {
		return []string{"ctid"}, []string{"tid"}
	}
	for _, k := range meta.key {
		names = append(names, k)
		types = append(types, meta.colType(k))
	}
	return names, types
}

func (sr *snapshotReader) chunkOf(ctx context.Context, meta *tableMeta, after []string) ([]core.Change, []string, error) {
	rows, err := readChunk(ctx, sr.tx, sr.types, meta, after, sr.chunk)
	if err != nil {
		return nil, nil, err
	}
	out := make([]core.Change, len(rows))
	var last []string
	for i, row := range rows {
		last = row.keyText
		pos := cdc.Position{Snapshot: &cdc.SnapshotPosition{At: sr.at, Table: meta.qualified(), Key: last}}
		out[i] = row.change(meta)
		out[i].Position = pos.Encode()
	}
	return out, last, nil
}

// querier runs a query: a transaction or a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// chunkRow is a row read by a snapshot chunk.
type chunkRow struct {
	// keyText is the text form of the key columns, in key order.
	keyText []string
	key     map[string]any
	rec     map[string]any
}

// change returns the row as a read change, without a position.
func (row chunkRow) change(meta *tableMeta) core.Change {
	return core.Change{
		Op:     core.OpRead,
		Key:    row.key,
		After:  row.rec,
		Source: core.SourceInfo{System: "postgres", Schema: meta.schema, Table: meta.name},
	}
}

// readChunk reads up to limit rows of the table after the key after (all
// from the start when after is nil), in key order.
func readChunk(ctx context.Context, q querier, ts *types, meta *tableMeta, after []string, limit int) ([]chunkRow, error) {
	keys, ktypes := keyCols(meta)
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = ident(k)
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	for i := range keys {
		fmt.Fprintf(&b, "%s::text AS \"__tributary_k%d\", ", quoted[i], i)
	}
	b.WriteString("t.* FROM " + meta.sqlName() + " t")
	args := []any{pgx.QueryResultFormats{pgx.TextFormatCode}}
	if len(after) == len(keys) {
		ph := make([]string, len(keys))
		for i := range keys {
			args = append(args, after[i])
			ph[i] = fmt.Sprintf("$%d::text::%s", len(args)-1, ktypes[i])
		}
		fmt.Fprintf(&b, " WHERE (t.%s) > (%s)", strings.Join(quoted, ", t."), strings.Join(ph, ", "))
	}
	fmt.Fprintf(&b, " ORDER BY t.%s LIMIT %d", strings.Join(quoted, ", t."), limit)
	rows, err := q.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, tableError("snapshot of table "+meta.qualified(), err)
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	var out []chunkRow
	for rows.Next() {
		raw := rows.RawValues()
		kt := make([]string, len(keys))
		for i := range keys {
			kt[i] = string(raw[i])
		}
		rec := make(map[string]any, len(fds)-len(keys))
		for i := len(keys); i < len(fds); i++ {
			if raw[i] == nil {
				rec[fds[i].Name] = nil
				continue
			}
			v, err := ts.decode(fds[i].DataTypeOID, raw[i])
			if err != nil {
				return nil, fmt.Errorf("snapshot of table %s: decode column %q: %w", meta.qualified(), fds[i].Name, err)
			}
			rec[fds[i].Name] = v
		}
		var key map[string]any
		if len(meta.key) > 0 {
			key = make(map[string]any, len(meta.key))
			for _, k := range meta.key {
				key[k] = rec[k]
			}
		}
		out = append(out, chunkRow{keyText: kt, key: key, rec: rec})
	}
	if err := rows.Err(); err != nil {
		return nil, tableError("snapshot of table "+meta.qualified(), err)
	}
	return out, nil
}

// close ends the snapshot transaction and returns its connection.
func (sr *snapshotReader) close(ctx context.Context) {
	if sr.tx != nil {
		_ = sr.tx.Rollback(ctx)
		sr.tx = nil
	}
	if sr.conn != nil {
		sr.conn.Release()
		sr.conn = nil
	}
}
