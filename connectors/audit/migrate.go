package audit

import (
	"context"
	"database/sql"
	"fmt"
)

// A SQLite log written before the id runs (its events table keyed by id,
// with SQLite's unique index on it) is rewritten when the sink opens it:
// its events move, in the order it took them (rowid), into an events
// table keyed by seq, and their ids, sorted, become the first run. It is
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
// catalog); migrated then writes the first run.
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

// firstRun writes the ids of every event of a migrated log, sorted, as
// its first run.
func (d *DB) firstRun(ctx context.Context, tx *sql.Tx) error {
	r := &run{n: 1}
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(seq), 0) FROM `+d.events).Scan(&r.count, &r.upto); err != nil {
		return fmt.Errorf("count the events of audit log %s: %w", d.where, err)
	}
	if r.count == 0 {
		return nil
	}
	r.level = level(r.count, defaultRunSize)
	if _, err := tx.ExecContext(ctx, d.runSchema(r.n)); err != nil {
		return fmt.Errorf("create id run %d of audit log %s: %w", r.n, d.where, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+d.runTable(r.n)+` (id, seq) SELECT id, seq FROM `+d.events+` ORDER BY id, seq`); err != nil {
		return fmt.Errorf("write id run %d of audit log %s: %w", r.n, d.where, err)
	}
	var err error
	if r.bloom, err = d.rebuildBloom(ctx, tx, r); err != nil {
		return err
	}
	return d.addRun(ctx, tx, r)
}
