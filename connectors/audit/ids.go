package audit

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The id index of a SQLite log. The events table is keyed by seq, the
// order the log took its events in, so that its rows and its search
// indexes (on times, types and subjects) grow at their ends. A unique
// index on the random event ids would instead put nearly every event of
// a commit on a page of its own, which SQLite's write-ahead log writes
// whole, and again at checkpoint: that index bound the log to about 30k
// events/s. The ids are indexed instead like an LSM tree:
//
//   - the tail: the ids of the events with seq above the runs' (at most
//     runSize or so). They are in the events table, durable with their
//     events, and the writer keeps them in memory (reading them back at
//     Open);
//   - runs: once the tail holds runSize ids, they are written, sorted, to
//     a table of their own (<prefix>ids_<n>, WITHOUT ROWID): the 64-bit
//     hash of each id (idHash) and the seq of its event, keyed by both,
//     so that its B-tree is built from left to right, page after page,
//     and holds about 20 bytes an id. A Bloom filter of each run's ids,
//     stored in the run catalog (<prefix>id_runs) beside the range of seq
//     it covers, stays in memory;
//   - merges: when mergeFanIn runs of a size class (level) are there, a
//     background goroutine merges them into one of the next class, in
//     chunks that each commit on their own so that Writes go on between
//     them, and drops them once the merged run is in the catalog. A log
//     of n ids has about (mergeFanIn-1)*log4(n/runSize) runs.
//
// An id is in the log when the tail or a run (whose filter may hold its
// hash) points at a row of the events table that has this id: a row
// retention has deleted is not, nor one of another id of the same hash.
// Merges leave out the entries below the oldest row.

// defaultRunSize is how many tail ids are written as a run.
const defaultRunSize = 16384

// mergeFanIn is how many runs of a level merge into one.
const mergeFanIn = 4

// mergeChunk is how many ids one transaction of a merge writes.
const mergeChunk = 8192

// run is one sorted run of ids.
type run struct {
	n     int64 // its table is <prefix>ids_<n>
	level int
	upto  int64 // the highest seq it covers
	count int64
	bloom *bloom
}

// level returns the size class of a run of n ids: 0 up to mergeFanIn
// times runSize, then one more for each factor mergeFanIn.
func level(n int64, runSize int) int {
	l := 0
	for limit := int64(runSize) * mergeFanIn; n >= limit; limit *= mergeFanIn {
		l++
	}
	return l
}

// idIndex is the writer's view of the id index. Its fields are guarded
// by DB.writeMu.
type idIndex struct {
	runSize int
	runs    []*run
	covered int64            // the highest seq the runs cover
	last    int64            // the highest seq logged
	tail    map[string]int64 // id -> seq, above covered
	// subjects are the entries of <prefix>subjects of the tail's events
	// (see subjects.go), written with the tail's run.
	subjects []subjectEntry
	nextRun  int64
	probes   map[int64]*sql.Stmt // by run: does it hold a live id?
}

// runTable returns the table of run n.
func (d *DB) runTable(n int64) string { return d.idsPrefix + strconv.FormatInt(n, 10) }

// runSchema returns the statement creating the table of run n.
func (d *DB) runSchema(n int64) string {
	return `CREATE TABLE ` + d.runTable(n) + ` (h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (h, seq)) WITHOUT ROWID`
}

// readRuns returns the runs of the catalog in the order of the seq they
// cover, with their filters: those of known (by run number) as they are,
// the others read from the catalog.
func (d *DB) readRuns(ctx context.Context, q querier, known map[int64]*run) ([]*run, error) {
	rows, err := q.QueryContext(ctx, `SELECT run, level, upto, count FROM `+d.catalog+` ORDER BY upto, run`)
	if err != nil {
		return nil, fmt.Errorf("read the id runs of audit log %s: %w", d.where, err)
	}
	var out []*run
	for rows.Next() {
		r := &run{}
		if err := rows.Scan(&r.n, &r.level, &r.upto, &r.count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the id runs of audit log %s: %w", d.where, err)
		}
		out = append(out, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the id runs of audit log %s: %w", d.where, err)
	}
	for _, r := range out {
		if k, ok := known[r.n]; ok {
			r.bloom = k.bloom
			continue
		}
		var b []byte
		if err := q.QueryRowContext(ctx, `SELECT bloom FROM `+d.catalog+` WHERE run = ?`, r.n).Scan(&b); err != nil {
			return nil, fmt.Errorf("read the filter of id run %d of audit log %s: %w", r.n, d.where, err)
		}
		if r.bloom = bloomFromBytes(b); r.bloom == nil {
			// A filter that is not one: rebuild it from the run.
			if r.bloom, err = d.rebuildBloom(ctx, q, r); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rebuildBloom builds the filter of run r from its table.
func (d *DB) rebuildBloom(ctx context.Context, q querier, r *run) (*bloom, error) {
	f := newBloom(int(r.count))
	rows, err := q.QueryContext(ctx, `SELECT h FROM `+d.runTable(r.n))
	if err != nil {
		return nil, fmt.Errorf("read id run %d of audit log %s: %w", r.n, d.where, err)
	}
	defer rows.Close()
	var h int64
	for rows.Next() {
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("read id run %d of audit log %s: %w", r.n, d.where, err)
		}
		f.add(uint64(h))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read id run %d of audit log %s: %w", r.n, d.where, err)
	}
	return f, nil
}

// querier is a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// loadIndex reads the writer's id index: the runs of the catalog, with
// their filters, and the ids of the tail from the events table.
func (d *DB) loadIndex(ctx context.Context, runSize int) (*idIndex, error) {
	runs, err := d.readRuns(ctx, d.db, nil)
	if err != nil {
		return nil, err
	}
	x := &idIndex{runSize: runSize, runs: runs, tail: map[string]int64{}, probes: map[int64]*sql.Stmt{}}
	for _, r := range runs {
		x.covered = max(x.covered, r.upto)
		x.nextRun = max(x.nextRun, r.n+1)
	}
	// Tables of runs a merge left unfinished are not in the catalog;
	// their numbers are not taken again.
	for _, n := range d.runTables(ctx) {
		x.nextRun = max(x.nextRun, n+1)
	}
	x.last = x.covered
	rows, err := d.db.QueryContext(ctx, `SELECT seq, id, subject, coalesce(time, '') FROM `+d.events+` WHERE seq > ? ORDER BY seq`, x.covered)
	if err != nil {
		return nil, fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq     int64
			id, t   string
			subject sql.NullString
		)
		if err := rows.Scan(&seq, &id, &subject, &t); err != nil {
			return nil, fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
		}
		x.tail[id] = seq
		x.last = seq
		if subject.Valid {
			x.subjects = append(x.subjects, subjectEntry{subject: subject.String, time: t, seq: seq})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the latest ids of audit log %s: %w", d.where, err)
	}
	return x, nil
}

// runTables returns the numbers of the run tables the file holds, in the
// catalog or not.
func (d *DB) runTables(ctx context.Context) []int64 {
	rows, err := d.db.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND substr(name, 1, ?) = ?`, len(d.idsPrefix), d.idsPrefix)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			return out
		}
		if n, err := strconv.ParseInt(strings.TrimPrefix(name, d.idsPrefix), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// holds reports whether the log holds a live event with id (hash h), as
// seen from tx, the writer's transaction. d.writeMu is held.
func (d *DB) holds(ctx context.Context, tx *sql.Tx, id string, h uint64) (bool, error) {
	x := d.idx
	if seq, ok := x.tail[id]; ok {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+d.events+` WHERE seq = ? AND id = ?`, seq, id).Scan(&n); err != nil {
			return false, fmt.Errorf("look for event %s in audit log %s: %w", id, d.where, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	for i := len(x.runs) - 1; i >= 0; i-- {
		r := x.runs[i]
		if !r.bloom.has(h) {
			continue
		}
		st, err := d.probe(ctx, r.n)
		if err != nil {
			return false, err
		}
		var n int
		if err := tx.StmtContext(ctx, st).QueryRowContext(ctx, int64(h), id).Scan(&n); err != nil {
			return false, fmt.Errorf("look for event %s in id run %d of audit log %s: %w", id, r.n, d.where, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	return false, nil
}

// probe returns the statement counting the live events with an id in
// run n. d.writeMu is held.
func (d *DB) probe(ctx context.Context, n int64) (*sql.Stmt, error) {
	if st, ok := d.idx.probes[n]; ok {
		return st, nil
	}
	st, err := d.db.PrepareContext(ctx, `SELECT count(*) FROM `+d.runTable(n)+` r JOIN `+d.events+` e ON e.seq = r.seq WHERE r.h = ? AND e.id = ?`)
	if err != nil {
		return nil, fmt.Errorf("prepare a lookup in id run %d of audit log %s: %w", n, d.where, err)
	}
	d.idx.probes[n] = st
	return st, nil
}

// entry is an entry of a run: the hash of an id (as SQLite's INTEGER
// takes it) and the seq of its event.
type entry struct {
	h   int64
	seq int64
}

// flush writes the ids of the tail, sorted, as a new run, and the
// subjects of its events to <prefix>subjects, in one transaction, and
// empties the tail. d.writeMu is held.
func (d *DB) flush(ctx context.Context) error {
	x := d.idx
	entries := make([]entry, 0, len(x.tail))
	r := &run{n: x.nextRun, upto: x.last, count: int64(len(x.tail)), bloom: newBloom(len(x.tail))}
	for id, seq := range x.tail {
		h := idHash(id)
		r.bloom.add(h)
		entries = append(entries, entry{int64(h), seq})
	}
	slices.SortFunc(entries, compareEntries)
	r.level = level(r.count, x.runSize)
	tx, err := d.w().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin writing id run %d of audit log %s: %w", r.n, d.where, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, d.runSchema(r.n)); err != nil {
		return fmt.Errorf("create id run %d of audit log %s: %w", r.n, d.where, err)
	}
	if err := d.insertEntries(ctx, tx, r.n, entries); err != nil {
		return err
	}
	if err := d.insertSubjects(ctx, tx, x.subjects); err != nil {
		return err
	}
	if err := d.addRun(ctx, tx, r); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit id run %d of audit log %s: %w", r.n, d.where, err)
	}
	x.nextRun++
	x.runs = append(x.runs, r)
	x.covered = r.upto
	clear(x.tail)
	clear(x.subjects) // no event's strings are kept alive
	x.subjects = x.subjects[:0]
	select {
	case d.mergeWake <- struct{}{}:
	default:
	}
	return nil
}

// compareEntries orders entries as the run tables do.
func compareEntries(a, b entry) int {
	if c := cmp.Compare(a.h, b.h); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// addRun records r in the catalog.
func (d *DB) addRun(ctx context.Context, tx *sql.Tx, r *run) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+d.catalog+` (run, level, upto, count, bloom) VALUES (?, ?, ?, ?, ?)`,
		r.n, r.level, r.upto, r.count, r.bloom.bytes()); err != nil {
		return fmt.Errorf("record id run %d in audit log %s: %w", r.n, d.where, err)
	}
	return nil
}

// entriesPerStatement is how many entries one INSERT into a run writes.
const entriesPerStatement = 512

// insertEntries appends entries, sorted, to the table of run n.
func (d *DB) insertEntries(ctx context.Context, tx *sql.Tx, n int64, entries []entry) error {
	args := make([]any, 0, 2*entriesPerStatement)
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(entries) > 0 {
		k := min(len(entries), entriesPerStatement)
		args = args[:0]
		for _, e := range entries[:k] {
			args = append(args, e.h, e.seq)
		}
		var err error
		if k == entriesPerStatement {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, d.insertEntriesSQL(n, k)); err != nil {
					return fmt.Errorf("write id run %d of audit log %s: %w", n, d.where, err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, d.insertEntriesSQL(n, k), args...)
		}
		if err != nil {
			return fmt.Errorf("write id run %d of audit log %s: %w", n, d.where, err)
		}
		entries = entries[k:]
	}
	return nil
}

// insertEntriesSQL returns the statement appending k entries to run n.
func (d *DB) insertEntriesSQL(n int64, k int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + d.runTable(n) + " (h, seq) VALUES ")
	for i := range k {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
	}
	return b.String()
}
