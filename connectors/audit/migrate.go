package audit

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
)

// A SQLite log written before the id runs (its events table keyed by id,
// with SQLite's unique index on it) is rewritten when the sink opens it:
// its events move, in the order it took them (rowid), into an events
// table keyed by seq, and their ids, sorted, become the first runs. It is
// one transaction: a crash or a failure leaves the log as it was, and the
// next Open starts again. It writes the log once more (a log of 1M
// events of 1 KB takes about a minute, and its size again in free space
// for the time of the copy).

// legacyLayout reports whether the events table of the log is keyed by
// id: a log written before the id runs. tx sees the log.
func (d *DB) legacyLayout(ctx context.Context, q querier) (bool, error) {
	var tables, seq int
	err := q.QueryRowContext(ctx, `SELECT count(*), (SELECT count(*) FROM pragma_table_info('`+d.events+`') WHERE name = 'seq') FROM sqlite_schema WHERE type = 'table' AND name = ?`, d.events).Scan(&tables, &seq)
	if err != nil {
		return false, fmt.Errorf("look for the events table of audit log %s: %w", d.where, err)
	}
	return tables > 0 && seq == 0, nil
}

// migrate rewrites a legacy events table in tx, before the schema's
// statements create what is missing (the indexes of the new table, the
// catalog); firstRuns then indexes its ids.
func (d *DB) migrate(ctx context.Context, tx *sql.Tx) error {
	if err := d.addPosition(ctx, tx); err != nil {
		return err
	}
	old := d.events + "_legacy"
	stmts := []string{
		`DROP INDEX IF EXISTS ` + d.events + `_time`,
		`DROP INDEX IF EXISTS ` + d.events + `_type_time`,
		`DROP INDEX IF EXISTS ` + d.events + `_subject_time`,
		`DROP INDEX IF EXISTS ` + d.events + `_logged_at`,
		`ALTER TABLE ` + d.events + ` RENAME TO ` + old,
		d.schema()[0],
		`INSERT INTO ` + d.events + ` (seq, id, type, source, subject, time, partition_key, data, data_base64, datacontenttype, dataschema, traceparent, position, logged_at)
SELECT rowid, id, type, source, subject, time, partition_key, data, data_base64, datacontenttype, dataschema, traceparent, position, logged_at FROM ` + old + ` ORDER BY rowid`,
		`DROP TABLE ` + old,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("move the events of audit log %s to its new layout: %w", d.where, err)
		}
	}
	return nil
}

// migrateChunk is the most ids of a migrated log one run takes, so that
// sorting them takes at most about 32 MiB; merges make one of them later.
const migrateChunk = 1 << 21

// firstRuns writes the ids of every event of a migrated log as its first
// runs, each of the ids of migrateChunk events, sorted.
func (d *DB) firstRuns(ctx context.Context, tx *sql.Tx) error {
	var after int64
	for n := int64(1); ; n++ {
		r := &run{n: n}
		entries, err := d.readEntries(ctx, tx, after)
		if err != nil || len(entries) == 0 {
			return err
		}
		r.count, r.bloom = int64(len(entries)), newBloom(len(entries))
		for _, e := range entries {
			r.bloom.add(uint64(e.h))
			r.upto = max(r.upto, e.seq)
		}
		after = r.upto
		slices.SortFunc(entries, compareEntries)
		r.level = level(r.count, defaultRunSize)
		if _, err := tx.ExecContext(ctx, d.runSchema(r.n)); err != nil {
			return fmt.Errorf("create id run %d of audit log %s: %w", r.n, d.where, err)
		}
		if err := d.insertEntries(ctx, tx, r.n, entries); err != nil {
			return err
		}
		if err := d.addRun(ctx, tx, r); err != nil {
			return err
		}
	}
}

// readEntries returns the run entries of the first migrateChunk events
// whose seq is above after.
func (d *DB) readEntries(ctx context.Context, tx *sql.Tx, after int64) ([]entry, error) {
	rows, err := tx.QueryContext(ctx, `SELECT seq, id FROM `+d.events+` WHERE seq > ? ORDER BY seq LIMIT ?`, after, migrateChunk)
	if err != nil {
		return nil, fmt.Errorf("read the ids of audit log %s: %w", d.where, err)
	}
	defer rows.Close()
	var (
		out []entry
		id  string
	)
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.seq, &id); err != nil {
			return nil, fmt.Errorf("read the ids of audit log %s: %w", d.where, err)
		}
		e.h = int64(idHash(id))
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the ids of audit log %s: %w", d.where, err)
	}
	return out, nil
}
