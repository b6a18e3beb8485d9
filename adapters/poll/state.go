package poll

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tributary/tributary/core/statedb"
)

// StateFile is the name of the local state database in Env.StateDir.
const StateFile = "poll-state.db"

const stateSchema = `
CREATE TABLE IF NOT EXISTS poll_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
-- poll_seen holds the seen entries of earlier releases, one row each: it is
-- still read and pruned, no longer written. poll_seen_blocks holds one row
-- per acknowledgement, its entries framed in data (see encodeSeen).
CREATE TABLE IF NOT EXISTS poll_seen (id BLOB PRIMARY KEY, c ANY) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS poll_seen_c ON poll_seen (c);
CREATE TABLE IF NOT EXISTS poll_seen_blocks (seq INTEGER PRIMARY KEY, max_c ANY NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS poll_seen_blocks_c ON poll_seen_blocks (max_c);
CREATE TABLE IF NOT EXISTS poll_index (
	rid     INTEGER PRIMARY KEY,
	key     TEXT    NOT NULL UNIQUE,
	hash    BLOB,
	ver     INTEGER NOT NULL,
	gone_ns INTEGER
);
`

// Meta keys of poll_meta.
const (
	metaMode    = "mode"
	metaStarted = "started_ns" // run time of the last run started
	metaDone    = "done_ns"    // run time of the last run fully acknowledged
	metaMark    = "watermark"  // cursor mode: highest acknowledged cursor
)

// lookupChunk is how many keys one index lookup asks for.
const lookupChunk = 256

// upsertChunk is how many rows one index write statement carries.
const upsertChunk = 200

// state is the Source's local database: run times, the cursor-mode seen
// set, the snapshot-mode index.
type state struct {
	db     *sql.DB
	lookup *sql.Stmt
	// upsert is the statement of a full chunk of index rows, prepared
	// once: parsing a statement of hundreds of rows costs more than
	// running it.
	upsert *sql.Stmt
	path   string
}

// indexUpsert returns the statement upserting n index rows.
func indexUpsert(n int) string {
	return `INSERT INTO poll_index (key, hash, ver, gone_ns) VALUES (?,?,?,NULL)` + strings.Repeat(",(?,?,?,NULL)", n-1) +
		` ON CONFLICT (key) DO UPDATE SET hash = excluded.hash, ver = excluded.ver, gone_ns = NULL RETURNING key, rid`
}

// indexRow is one committed index entry.
type indexRow struct {
	rid  int64
	hash []byte // nil for a tombstone
	ver  int64
}

func openState(ctx context.Context, dir string) (*state, error) {
	path, file := ":memory:", ""
	if dir != "" {
		path = filepath.Join(dir, StateFile)
		file = path
	}
	db, err := statedb.Open(file, statedb.Options{
		Sync: statedb.SyncNormal,
		// A 32 MiB page cache (per connection) holds most of the index of a
		// million keys: lookups and upserts then rarely go to the file.
		CacheKiB: 32768,
	})
	if err != nil {
		return nil, fmt.Errorf("open poll state %s: %w", path, err)
	}
	if dir != "" {
		db.SetMaxOpenConns(4) // in memory, statedb allows one
	}
	st := &state{db: db, path: path}
	if _, err := db.ExecContext(ctx, stateSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("create poll state %s: %w", path, err)
	}
	q := "SELECT rid, key, hash, ver FROM poll_index WHERE key IN (?" + strings.Repeat(",?", lookupChunk-1) + ")"
	if st.lookup, err = db.PrepareContext(ctx, q); err == nil {
		st.upsert, err = db.PrepareContext(ctx, indexUpsert(upsertChunk))
	}
	if err != nil {
		st.close()
		return nil, fmt.Errorf("prepare poll state %s: %w", path, err)
	}
	return st, nil
}

func (st *state) close() error {
	if st == nil || st.db == nil {
		return nil
	}
	for _, stmt := range []*sql.Stmt{st.lookup, st.upsert} {
		if stmt != nil {
			stmt.Close()
		}
	}
	err := st.db.Close()
	st.db = nil
	return err
}

// reset empties the state.
func (st *state) reset(ctx context.Context) error {
	_, err := st.db.ExecContext(ctx, `DELETE FROM poll_meta; DELETE FROM poll_seen; DELETE FROM poll_seen_blocks; DELETE FROM poll_index;`)
	if err != nil {
		return fmt.Errorf("reset poll state %s: %w", st.path, err)
	}
	return nil
}

func (st *state) meta(ctx context.Context, k string) (string, bool, error) {
	var v string
	err := st.db.QueryRowContext(ctx, `SELECT v FROM poll_meta WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s from poll state %s: %w", k, st.path, err)
	}
	return v, true, nil
}

func (st *state) metaInt(ctx context.Context, k string) (int64, error) {
	v, ok, err := st.meta(ctx, k)
	if err != nil || !ok {
		return 0, err
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n, nil
}

func (st *state) setMeta(ctx context.Context, k, v string) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO poll_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, v)
	if err != nil {
		return fmt.Errorf("write %s to poll state %s: %w", k, st.path, err)
	}
	return nil
}

// cursorArg is a cval as stored in the c column.
func cursorArg(c cval, kind CursorKind) any {
	if kind == CursorString {
		return c.s
	}
	return c.i
}

// loadSeen returns the seen entries whose cursor is at or after lower.
func (st *state) loadSeen(ctx context.Context, kind CursorKind, lower cval) (map[[16]byte]cval, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT id, c FROM poll_seen WHERE c >= ?`, cursorArg(lower, kind))
	if err != nil {
		return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
	}
	defer rows.Close()
	out := map[[16]byte]cval{}
	for rows.Next() {
		var id []byte
		var c any
		if err := rows.Scan(&id, &c); err != nil {
			return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
		}
		var k [16]byte
		copy(k[:], id)
		switch x := c.(type) {
		case int64:
			out[k] = cval{i: x}
		case string:
			out[k] = cval{s: x}
		case []byte:
			out[k] = cval{s: string(x)}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
	}
	blocks, err := st.db.QueryContext(ctx, `SELECT seq, data FROM poll_seen_blocks WHERE max_c >= ?`, cursorArg(lower, kind))
	if err != nil {
		return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
	}
	defer blocks.Close()
	for blocks.Next() {
		var seq int64
		var data []byte
		if err := blocks.Scan(&seq, &data); err != nil {
			return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
		}
		if err := decodeSeen(data, kind, lower, out); err != nil {
			return nil, fmt.Errorf("load seen set from poll state %s: block %d: %w", st.path, seq, err)
		}
	}
	if err := blocks.Err(); err != nil {
		return nil, fmt.Errorf("load seen set from poll state %s: %w", st.path, err)
	}
	return out, nil
}

// encodeSeen frames the seen entries of one commit as one block: for each,
// its 16-byte id then its cursor (a zigzag varint, or a length-prefixed
// string for string cursors). It returns the block and its greatest
// cursor, by which blocks are pruned: one row per commit rather than one
// B-tree entry per record.
func encodeSeen(ids [][16]byte, cs []cval, kind CursorKind) ([]byte, cval) {
	b := make([]byte, 0, len(ids)*(16+binary.MaxVarintLen64))
	maxC := cs[0]
	for i, id := range ids {
		b = append(b, id[:]...)
		if kind == CursorString {
			b = binary.AppendUvarint(b, uint64(len(cs[i].s)))
			b = append(b, cs[i].s...)
		} else {
			b = binary.AppendVarint(b, cs[i].i)
		}
		if maxC.less(cs[i], kind) {
			maxC = cs[i]
		}
	}
	return b, maxC
}

// decodeSeen adds the entries of a block whose cursor is at or after lower
// to out.
func decodeSeen(b []byte, kind CursorKind, lower cval, out map[[16]byte]cval) error {
	for len(b) > 0 {
		if len(b) < 16 {
			return errors.New("truncated seen entry")
		}
		var id [16]byte
		copy(id[:], b)
		b = b[16:]
		var c cval
		if kind == CursorString {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				return errors.New("truncated seen cursor")
			}
			c.s = string(b[k : k+int(n)])
			b = b[k+int(n):]
		} else {
			v, k := binary.Varint(b)
			if k <= 0 {
				return errors.New("truncated seen cursor")
			}
			c.i = v
			b = b[k:]
		}
		if !c.less(lower, kind) {
			out[id] = c
		}
	}
	return nil
}

// lookupKeys returns the committed index rows of keys.
func (st *state) lookupKeys(ctx context.Context, keys []string, out map[string]indexRow) error {
	args := make([]any, lookupChunk)
	for start := 0; start < len(keys); start += lookupChunk {
		chunk := keys[start:min(start+lookupChunk, len(keys))]
		for i := range args {
			if i < len(chunk) {
				args[i] = chunk[i]
			} else {
				args[i] = chunk[0]
			}
		}
		rows, err := st.lookup.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("look up keys in poll index %s: %w", st.path, err)
		}
		for rows.Next() {
			var r indexRow
			var k string
			if err := rows.Scan(&r.rid, &k, &r.hash, &r.ver); err != nil {
				rows.Close()
				return fmt.Errorf("look up keys in poll index %s: %w", st.path, err)
			}
			out[k] = r
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("look up keys in poll index %s: %w", st.path, err)
		}
	}
	return nil
}

// indexEmpty reports whether the index holds no entry, not even a
// tombstone.
func (st *state) indexEmpty(ctx context.Context) (bool, error) {
	var any int
	if err := st.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM poll_index)`).Scan(&any); err != nil {
		return false, fmt.Errorf("read poll index %s: %w", st.path, err)
	}
	return any == 0, nil
}

// indexCursor reads the live index entries in row id order, a page at a
// time, and matches a snapshot run's keys against them. Row ids follow the
// order keys were first read in, so when the source returns its rows in a
// stable order (by primary key, or in storage order) each key is the next
// entry and a run costs one sequential read of the index instead of one
// lookup per key. A key that is not among the next entries is left to a
// lookup: the cursor only saves work, it never decides that a key is
// absent.
//
// The cursor also remembers what it passed over: the entries it stepped
// over without a match and the row id ranges it jumped. Once the source is
// read, those and the entries after the cursor are the only candidates
// for deletes; with too many of them, the whole index is scanned instead.
type indexCursor struct {
	st    *state
	after int64 // the highest row id read
	pos   int64 // the row id of the last entry matched or skipped to
	buf   []cursorEntry
	i     int
	done  bool

	skipped  []string   // keys stepped over without a match
	gaps     [][2]int64 // row id ranges (lo, hi] jumped without reading
	overflow bool       // too many skipped keys: scan the whole index
}

// maxSkipped bounds the keys an indexCursor remembers.
const maxSkipped = 1 << 16

func (c *indexCursor) skip(from, to int) {
	if c.overflow {
		return
	}
	for j := from; j < to; j++ {
		c.skipped = append(c.skipped, c.buf[j].key)
	}
	if len(c.skipped) > maxSkipped {
		c.overflow, c.skipped, c.gaps = true, nil, nil
	}
}

type cursorEntry struct {
	key string
	row indexRow
}

// cursorPage is how many index entries the cursor reads at a time;
// cursorAhead how many entries past the next one it looks at, stepping
// over keys that left the source.
const (
	cursorPage  = 2048
	cursorAhead = 8
)

// match returns the index entry of key if it is among the next entries.
func (c *indexCursor) match(ctx context.Context, key string) (indexRow, bool, error) {
	if len(c.buf)-c.i <= cursorAhead && !c.done {
		if err := c.fill(ctx); err != nil {
			return indexRow{}, false, err
		}
	}
	for j := c.i; j < len(c.buf) && j <= c.i+cursorAhead; j++ {
		if c.buf[j].key == key {
			c.skip(c.i, j)
			c.i = j + 1
			c.pos = c.buf[j].row.rid
			return c.buf[j].row, true, nil
		}
	}
	return indexRow{}, false, nil
}

// seek moves the cursor after row id rid when rid is ahead of it.
func (c *indexCursor) seek(rid int64) {
	if rid <= c.pos {
		return
	}
	c.pos = rid
	j := c.i
	for j < len(c.buf) && c.buf[j].row.rid <= rid {
		j++
	}
	c.skip(c.i, j)
	c.i = j
	if c.i == len(c.buf) && rid > c.after {
		if !c.overflow {
			c.gaps = append(c.gaps, [2]int64{c.after, rid})
		}
		c.buf, c.i, c.after, c.done = c.buf[:0], 0, rid, false
	}
}

// candidates returns the keys passed over and not matched, including the
// entries read and not consumed, and the row id ranges to scan: the gaps
// and everything after the cursor. ok is false when the whole index must
// be scanned.
func (c *indexCursor) candidates() (keys []string, ranges [][2]int64, ok bool) {
	if c.overflow {
		return nil, nil, false
	}
	c.skip(c.i, len(c.buf))
	if c.overflow {
		return nil, nil, false
	}
	return c.skipped, append(c.gaps, [2]int64{c.after, math.MaxInt64}), true
}

// fill appends the next page of entries to those not consumed yet.
func (c *indexCursor) fill(ctx context.Context) error {
	n := copy(c.buf, c.buf[c.i:])
	c.buf, c.i = c.buf[:n], 0
	rows, err := c.st.db.QueryContext(ctx, `SELECT rid, key, hash, ver FROM poll_index WHERE rid > ? AND hash IS NOT NULL ORDER BY rid LIMIT ?`, c.after, cursorPage)
	if err != nil {
		return fmt.Errorf("read poll index %s: %w", c.st.path, err)
	}
	defer rows.Close()
	got := 0
	for rows.Next() {
		var e cursorEntry
		if err := rows.Scan(&e.row.rid, &e.key, &e.row.hash, &e.row.ver); err != nil {
			return fmt.Errorf("read poll index %s: %w", c.st.path, err)
		}
		c.buf = append(c.buf, e)
		c.after = e.row.rid
		got++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read poll index %s: %w", c.st.path, err)
	}
	c.done = got < cursorPage
	return nil
}

// livePage returns up to n live (not deleted) index entries with row ids
// in (after, hi], in row id order.
func (st *state) livePage(ctx context.Context, after, hi int64, n int) (rids []int64, keys []string, vers []int64, err error) {
	rows, err := st.db.QueryContext(ctx, `SELECT rid, key, ver FROM poll_index WHERE rid > ? AND rid <= ? AND hash IS NOT NULL ORDER BY rid LIMIT ?`, after, hi, n)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("scan poll index %s: %w", st.path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var rid, ver int64
		var k string
		if err := rows.Scan(&rid, &k, &ver); err != nil {
			return nil, nil, nil, fmt.Errorf("scan poll index %s: %w", st.path, err)
		}
		rids, keys, vers = append(rids, rid), append(keys, k), append(vers, ver)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("scan poll index %s: %w", st.path, err)
	}
	return rids, keys, vers, nil
}

// commitBatch is what one Ack makes durable.
type commitBatch struct {
	kind CursorKind
	// seen entries to add, and the bound below which entries are dropped.
	seenIDs    [][16]byte
	seenCs     []cval
	prune      cval
	hasPrune   bool
	mark       cval
	hasMark    bool
	upsertKeys []string
	upsertHash [][]byte
	upsertVer  []int64
	goneKeys   []string
	goneVer    []int64
	goneNS     int64
	doneNS     int64
}

// commit applies b in one transaction and returns the row ids of the
// upserted keys.
func (st *state) commit(ctx context.Context, b *commitBatch) (map[string]int64, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("commit poll state %s: %w", st.path, err)
	}
	defer tx.Rollback()
	fail := func(err error) (map[string]int64, error) {
		return nil, fmt.Errorf("commit poll state %s: %w", st.path, err)
	}
	var args []any
	if len(b.seenIDs) > 0 {
		data, maxC := encodeSeen(b.seenIDs, b.seenCs, b.kind)
		if _, err := tx.ExecContext(ctx, `INSERT INTO poll_seen_blocks (max_c, data) VALUES (?, ?)`, cursorArg(maxC, b.kind), data); err != nil {
			return fail(err)
		}
	}
	if b.hasPrune {
		lower := cursorArg(b.prune, b.kind)
		if _, err := tx.ExecContext(ctx, `DELETE FROM poll_seen_blocks WHERE max_c < ?`, lower); err != nil {
			return fail(err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM poll_seen WHERE c < ?`, lower); err != nil {
			return fail(err)
		}
	}
	if b.hasMark {
		v := strconv.FormatInt(b.mark.i, 10)
		if b.kind == CursorString {
			v = b.mark.s
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO poll_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, metaMark, v); err != nil {
			return fail(err)
		}
	}
	var rids map[string]int64
	var ups *sql.Stmt
	if len(b.upsertKeys) >= upsertChunk {
		ups = tx.StmtContext(ctx, st.upsert)
	}
	for start := 0; start < len(b.upsertKeys); start += upsertChunk {
		end := min(start+upsertChunk, len(b.upsertKeys))
		args = args[:0]
		for i := start; i < end; i++ {
			args = append(args, b.upsertKeys[i], b.upsertHash[i], b.upsertVer[i])
		}
		var rows *sql.Rows
		var err error
		if end-start == upsertChunk {
			rows, err = ups.QueryContext(ctx, args...)
		} else {
			rows, err = tx.QueryContext(ctx, indexUpsert(end-start), args...)
		}
		if err != nil {
			return fail(err)
		}
		if rids == nil {
			rids = make(map[string]int64, len(b.upsertKeys))
		}
		for rows.Next() {
			var k string
			var rid int64
			if err := rows.Scan(&k, &rid); err != nil {
				rows.Close()
				return fail(err)
			}
			rids[k] = rid
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fail(err)
		}
	}
	if len(b.goneKeys) > 0 {
		gone, err := tx.PrepareContext(ctx, `UPDATE poll_index SET hash = NULL, ver = ?, gone_ns = ? WHERE key = ?`)
		if err != nil {
			return fail(err)
		}
		defer gone.Close()
		for i, k := range b.goneKeys {
			if _, err := gone.ExecContext(ctx, b.goneVer[i], b.goneNS, k); err != nil {
				return fail(err)
			}
		}
	}
	if b.doneNS != 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO poll_meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, metaDone, strconv.FormatInt(b.doneNS, 10)); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return rids, nil
}

// pruneTombstones drops deleted index entries older than beforeNS.
func (st *state) pruneTombstones(ctx context.Context, beforeNS int64) error {
	if _, err := st.db.ExecContext(ctx, `DELETE FROM poll_index WHERE hash IS NULL AND gone_ns < ?`, beforeNS); err != nil {
		return fmt.Errorf("prune poll index %s: %w", st.path, err)
	}
	return nil
}
