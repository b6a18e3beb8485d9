package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// snapshotReader reads the captured tables in key order, up to parallel
// tables at once, each worker on its own connection inside its own
// REPEATABLE READ READ ONLY transaction. When the replication slot was just
// created, every transaction imports the snapshot the slot exported, so the
// rows read are exactly those committed before the slot's consistent point,
// from which streaming starts.
//
// Workers take the tables in name order and prefetch their chunks into a
// channel that holds about one chunk per worker, so memory stays bounded;
// next hands out whichever chunk is ready first and gives its changes the
// positions that resume every table (cdc.Progress).
type snapshotReader struct {
	steps    []cdc.Step
	metas    map[string]*tableMeta
	chunk    int
	parallel int
	newTypes func() *types
	progress *cdc.Progress

	closeMu sync.Mutex // guards txs
	txs     []snapshotTx
	out     chan snapshotChunk
	stop    context.CancelFunc
	wg      sync.WaitGroup
	// taken counts the steps workers took; running counts the workers
	// still running, and the last one to stop closes out; failed is set
	// when one stopped before its tables were read.
	taken   atomic.Int64
	running atomic.Int64
	failed  atomic.Bool
	// finished is set by next once every chunk was handed out.
	finished bool
}

// snapshotTx is one worker's connection and transaction.
type snapshotTx struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
}

// snapshotChunk is what a worker hands next: a chunk of a table's changes
// (without positions) and their keys' text forms, whether it is the
// table's last, or the error that stopped the worker.
type snapshotChunk struct {
	table   string
	changes []core.Change
	keys    [][]string
	last    bool
	err     error
}

// newSnapshotReader returns the reader of the steps' tables, skipping the
// outbox table (outbox is "" when there is none) and tables without
// metadata. from is the snapshot position resumed from, nil for a new
// snapshot.
func newSnapshotReader(steps []cdc.Step, from *cdc.SnapshotPosition, metas map[string]*tableMeta, at string, chunk, parallel int, outbox string, newTypes func() *types) *snapshotReader {
	var keep []cdc.Step
	for _, st := range steps {
		if m := metas[st.Table]; m != nil && m.qualified() != outbox {
			keep = append(keep, st)
		}
	}
	return &snapshotReader{
		steps: keep, metas: metas, chunk: chunk, parallel: max(1, min(parallel, len(keep))),
		newTypes: newTypes, progress: cdc.NewProgress(at, keep, from),
	}
}

// begin opens every worker's transaction, importing exported when set,
// then starts the workers. The exported snapshot stays importable only
// until the replication connection runs its next command, so every
// transaction imports it here, before streaming starts.
func (sr *snapshotReader) begin(ctx context.Context, pool *pgxpool.Pool, exported string) error {
	sr.out = make(chan snapshotChunk, sr.parallel)
	if len(sr.steps) == 0 {
		close(sr.out)
		return nil
	}
	for i := range sr.parallel {
		if err := sr.beginOne(ctx, pool, exported); err != nil {
			sr.close(ctx)
			return fmt.Errorf("snapshot worker %d of %d: %w", i+1, sr.parallel, err)
		}
	}
	wctx, stop := context.WithCancel(context.Background())
	sr.stop = stop
	sr.running.Store(int64(len(sr.txs)))
	for _, stx := range sr.txs {
		sr.wg.Go(func() { sr.work(wctx, stx.tx, sr.newTypes()) })
	}
	return nil
}

// beginOne opens one worker's transaction.
func (sr *snapshotReader) beginOne(ctx context.Context, pool *pgxpool.Pool, exported string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect for the snapshot: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Release()
		return fmt.Errorf("begin the snapshot transaction: %w", err)
	}
	sr.closeMu.Lock()
	sr.txs = append(sr.txs, snapshotTx{conn: conn, tx: tx})
	sr.closeMu.Unlock()
	if exported != "" {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+strings.ReplaceAll(exported, "'", "")+"'"); err != nil {
			return fmt.Errorf("import the slot's snapshot %s: %w", exported, err)
		}
	}
	return nil
}

// work reads the tables it takes, chunk by chunk, until none is left or
// ctx is done.
func (sr *snapshotReader) work(ctx context.Context, tx pgx.Tx, ts *types) {
	complete := false
	defer func() {
		if !complete {
			sr.failed.Store(true)
		}
		if sr.running.Add(-1) == 0 {
			close(sr.out)
		}
	}()
	send := func(c snapshotChunk) bool {
		select {
		case sr.out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		i := int(sr.taken.Add(1)) - 1
		if i >= len(sr.steps) {
			complete = true
			return
		}
		st := sr.steps[i]
		meta := sr.metas[st.Table]
		after := st.After
		for {
			rows, err := readChunk(ctx, tx, ts, meta, after, sr.chunk)
			if err != nil {
				if ctx.Err() == nil {
					send(snapshotChunk{table: st.Table, err: err})
				}
				return
			}
			c := snapshotChunk{table: st.Table, last: len(rows) < sr.chunk}
			if len(rows) > 0 {
				c.changes = make([]core.Change, len(rows))
				c.keys = make([][]string, len(rows))
				for j, row := range rows {
					c.changes[j] = row.change(meta)
					c.keys[j] = row.keyText
				}
				after = rows[len(rows)-1].keyText
			}
			if !send(c) {
				return
			}
			if c.last {
				break
			}
		}
	}
}

// errSnapshotStopped is returned by next when the workers stopped before
// every table was read (the reader is closing).
var errSnapshotStopped = errors.New("snapshot stopped before every table was read")

// done reports whether every table was read and handed out.
func (sr *snapshotReader) done() bool { return sr.finished }

// next returns the next chunk ready, with positions. It blocks until one
// is ready or ctx is done, and returns no changes and no error once every
// table is read. It is not safe for concurrent use.
func (sr *snapshotReader) next(ctx context.Context) ([]core.Change, error) {
	for !sr.finished {
		select {
		case c, ok := <-sr.out:
			if !ok {
				if sr.failed.Load() {
					return nil, errSnapshotStopped
				}
				sr.finished = true
				return nil, nil
			}
			if c.err != nil {
				return nil, c.err
			}
			if len(c.changes) > 0 {
				enc := sr.progress.Chunk(c.table)
				for i := range c.changes {
					c.changes[i].Position = enc.Encode(c.keys[i])
				}
				sr.progress.Read(c.table, c.keys[len(c.keys)-1])
			}
			if c.last {
				sr.progress.Finish(c.table)
			}
			if len(c.changes) > 0 {
				return c.changes, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
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

// close stops the workers, ends their transactions and closes their
// connections, so that they do not linger in the pool once the snapshot is
// done. It is safe to call twice and after a failed begin.
func (sr *snapshotReader) close(ctx context.Context) {
	sr.closeMu.Lock()
	defer sr.closeMu.Unlock()
	if sr.stop != nil {
		sr.stop()
	}
	sr.wg.Wait()
	for _, stx := range sr.txs {
		_ = stx.tx.Rollback(ctx)
		c := stx.conn.Hijack()
		_ = c.Close(ctx)
	}
	sr.txs = nil
}
