package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// snapshotReader reads the captured tables one after the other in primary
// key order, chunk by chunk, inside one transaction started WITH
// CONSISTENT SNAPSHOT. A new snapshot reads the binlog place of that same
// instant (MariaDB: binlog_snapshot_file and _position, no lock; MySQL: a
// brief FLUSH TABLES WITH READ LOCK around the start), and streaming starts
// there once every table is read. A snapshot resumed after a crash reads
// the tables left in a new transaction, after the last key delivered; the
// stream then replays every change since the first snapshot's place, so
// the rows converge.
type snapshotReader struct {
	conn     *sql.Conn
	sch      schema
	steps    []cdc.Step
	chunk    int
	progress *cdc.Progress
	// cur indexes steps; after is the last key read of steps[cur].
	cur   int
	after []string
}

// beginSnapshot opens the snapshot transaction on its own connection and,
// when at is the zero place, reads the place it is consistent with.
func beginSnapshot(ctx context.Context, db *sql.DB, flavor string, needPlace bool) (*sql.Conn, binlogPos, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, binlogPos{}, fmt.Errorf("connect for the snapshot: %w", err)
	}
	fail := func(what string, err error) (*sql.Conn, binlogPos, error) {
		conn.Close()
		return nil, binlogPos{}, fmt.Errorf("snapshot: %s: %w", what, err)
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
		return fail("set the isolation level", err)
	}
	if !needPlace {
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return fail("start the transaction", err)
		}
		return conn, binlogPos{}, nil
	}
	if flavor == gomysql.MariaDBFlavor {
		if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return fail("start the transaction", err)
		}
		var file string
		var pos uint32
		rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return fail("read binlog_snapshot_file and _position", err)
		}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				rows.Close()
				return fail("read binlog_snapshot_file and _position", err)
			}
			switch strings.ToLower(k) {
			case "binlog_snapshot_file":
				file = v
			case "binlog_snapshot_position":
				n, _ := strconv.ParseUint(v, 10, 32)
				pos = uint32(n)
			}
		}
		rows.Close()
		if file == "" {
			return fail("read binlog_snapshot_file", fmt.Errorf("the server reports none: is log_bin on?"))
		}
		var g sql.NullString
		if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, pos).Scan(&g); err != nil {
			return fail("read the GTID position of "+file, err)
		}
		set, err := gomysql.ParseMariadbGTIDSet(g.String)
		if err != nil {
			return fail("read the GTID position of "+file, err)
		}
		return conn, binlogPos{gtid: set}, nil
	}
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
		return fail("lock tables for the instant the snapshot starts (needs RELOAD)", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "UNLOCK TABLES")
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return fail("start the transaction", err)
	}
	p, err := currentPlace(ctx, conn, flavor)
	if err != nil {
		return fail("read the binlog position", err)
	}
	return conn, p, nil
}

// queryer is a connection or a pool.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// currentPlace returns the binlog place after the last transaction
// written: @@gtid_binlog_pos on MariaDB, @@gtid_executed on MySQL with
// gtid_mode=ON, else the binlog file and offset.
func currentPlace(ctx context.Context, q queryer, flavor string) (binlogPos, error) {
	if flavor == gomysql.MariaDBFlavor {
		var g string
		if err := q.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&g); err != nil {
			return binlogPos{}, err
		}
		set, err := gomysql.ParseMariadbGTIDSet(g)
		return binlogPos{gtid: set}, err
	}
	var mode string
	if err := q.QueryRowContext(ctx, "SELECT @@gtid_mode").Scan(&mode); err == nil && strings.EqualFold(mode, "ON") {
		var g string
		if err := q.QueryRowContext(ctx, "SELECT @@gtid_executed").Scan(&g); err != nil {
			return binlogPos{}, err
		}
		set, err := gomysql.ParseMysqlGTIDSet(strings.ReplaceAll(g, "\n", ""))
		return binlogPos{gtid: set}, err
	}
	rows, err := q.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return binlogPos{}, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return binlogPos{}, fmt.Errorf("SHOW MASTER STATUS is empty: is log_bin on?")
	}
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return binlogPos{}, err
	}
	n, _ := strconv.ParseUint(string(vals[1]), 10, 32)
	return binlogPos{file: string(vals[0]), pos: uint32(n)}, nil
}

func newSnapshotReader(conn *sql.Conn, sch schema, captured []string, from *cdc.SnapshotPosition, at string, chunk int) *snapshotReader {
	steps := cdc.NewPlan(captured).Remaining(from)
	sr := &snapshotReader{conn: conn, sch: sch, steps: steps, chunk: chunk, progress: cdc.NewProgress(at, steps, from)}
	if len(steps) > 0 {
		sr.after = steps[0].After
	}
	return sr
}

func (sr *snapshotReader) done() bool { return sr.cur >= len(sr.steps) }

// next reads the next chunk; it returns no changes once every table is
// read.
func (sr *snapshotReader) next(ctx context.Context) ([]core.Change, error) {
	for !sr.done() {
		st := sr.steps[sr.cur]
		t := sr.sch[strings.ToLower(st.Table)]
		if t == nil {
			return nil, fmt.Errorf("snapshot of %s: the table is not in the schema history", st.Table)
		}
		chs, keys, err := readChunk(ctx, sr.conn, t, sr.after, sr.chunk)
		if err != nil {
			return nil, err
		}
		if len(chs) > 0 {
			enc := sr.progress.Chunk(st.Table)
			for i := range chs {
				chs[i].Position = enc.Encode(keys[i])
			}
			sr.after = keys[len(keys)-1]
			sr.progress.Read(st.Table, sr.after)
		}
		if len(chs) < sr.chunk {
			sr.progress.Finish(st.Table)
			sr.cur++
			sr.after = nil
			if sr.cur < len(sr.steps) {
				sr.after = sr.steps[sr.cur].After
			}
		}
		if len(chs) > 0 {
			return chs, nil
		}
	}
	return nil, nil
}

// readChunk reads up to limit rows of t after the key after, in key order.
// A table without a primary key is read by offset, its "key" the row
// number, which a concurrent write may shift: such a table is best read
// in one chunk.
func readChunk(ctx context.Context, conn *sql.Conn, t *table, after []string, limit int) ([]core.Change, [][]string, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	var b strings.Builder
	var args []any
	b.WriteString("SELECT " + strings.Join(cols, ", ") + " FROM " + quoteIdent(t.DB) + "." + quoteIdent(t.Name))
	offset := 0
	if len(t.Key) > 0 {
		keys := make([]string, len(t.Key))
		for i, k := range t.Key {
			keys[i] = quoteIdent(k)
		}
		if len(after) == len(keys) {
			ph := strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ")
			fmt.Fprintf(&b, " WHERE (%s) > (%s)", strings.Join(keys, ", "), ph)
			for _, a := range after {
				args = append(args, a)
			}
		}
		fmt.Fprintf(&b, " ORDER BY %s LIMIT %d", strings.Join(keys, ", "), limit)
	} else {
		if len(after) == 1 {
			offset, _ = strconv.Atoi(after[0])
		}
		fmt.Fprintf(&b, " LIMIT %d OFFSET %d", limit, offset)
	}
	rows, err := conn.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot of table %s: %w", t.qualified(), err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		keyIdx[i] = t.colIndex(k)
	}
	var chs []core.Change
	var keys [][]string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("snapshot of table %s: %w", t.qualified(), err)
		}
		rec := make(map[string]any, len(cols))
		for i := range t.Columns {
			c := &t.Columns[i]
			v, err := decodeText(c, raw[i])
			if err != nil {
				return nil, nil, fmt.Errorf("snapshot of table %s: decode column %s: %w", t.qualified(), c.Name, err)
			}
			rec[c.Name] = v
		}
		var kt []string
		if len(t.Key) > 0 {
			kt = make([]string, len(keyIdx))
			for i, j := range keyIdx {
				kt[i] = string(raw[j])
			}
		} else {
			offset++
			kt = []string{strconv.Itoa(offset)}
		}
		chs = append(chs, core.Change{Op: core.OpRead, Key: keyOf(t, rec), After: rec, Source: core.SourceInfo{System: "mysql", Schema: t.DB, Table: t.Name}})
		keys = append(keys, kt)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("snapshot of table %s: %w", t.qualified(), err)
	}
	return chs, keys, nil
}

func (sr *snapshotReader) close() {
	if sr.conn != nil {
		_, _ = sr.conn.ExecContext(context.Background(), "ROLLBACK")
		sr.conn.Close()
		sr.conn = nil
	}
}
