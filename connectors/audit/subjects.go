package audit

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// The subject index of a SQLite log. An index of the events table on
// (subject, time) takes each event at its subject's place: with 64 order
// keys, each commit of a few hundred events rewrote 64 of its pages to
// the write-ahead log (and again at checkpoint), which cost the committer
// about 5 µs an event at the group sizes the runtime makes. The subjects
// are indexed instead like the ids (see ids.go), in the table
// <prefix>subjects (WITHOUT ROWID, keyed by subject, time and seq):
//
//   - the subjects of the events above the id runs (the tail) are only in
//     the events table; the writer keeps them in memory beside the tail's
//     ids (reading them back at Open);
//   - when the tail is written as an id run, its subjects are written,
//     sorted, to <prefix>subjects in the same transaction: each subject's
//     entries go in one after the other, and each page once per run
//     rather than once per commit.
//
// So the events with a subject and a seq up to the highest the id runs
// cover (max(upto) of <prefix>id_runs, read in the same transaction) are
// in <prefix>subjects; a search by subject takes those and the tail's
// rows of the subject. An event with no time is there with time ''.
// Retention deletes an event's entry with the event.

// subjectEntry is an entry of <prefix>subjects.
type subjectEntry struct {
	subject string
	time    string // the events table's text, '' for none
	seq     int64
}

// compareSubjectEntries orders entries as the table's key does.
func compareSubjectEntries(a, b subjectEntry) int {
	if c := strings.Compare(a.subject, b.subject); c != 0 {
		return c
	}
	if c := strings.Compare(a.time, b.time); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// subjectsSchema returns the statement creating <prefix>subjects.
func (d *DB) subjectsSchema() string {
	return `CREATE TABLE IF NOT EXISTS ` + d.subjects + ` (
	subject TEXT NOT NULL,
	time TEXT NOT NULL,
	seq INTEGER NOT NULL,
	PRIMARY KEY (subject, time, seq)
) WITHOUT ROWID`
}

// hasSubjectsTable reports whether the SQLite log q sees has
// <prefix>subjects: a log written before it has an index of the events
// table on (subject, time) instead, until the sink opens it.
func (d *DB) hasSubjectsTable(ctx context.Context, q querier) (bool, error) {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, d.subjects).Scan(&n); err != nil {
		return false, fmt.Errorf("look for the subjects table of audit log %s: %w", d.where, err)
	}
	return n > 0, nil
}

// fillSubjects indexes, in tx, the subjects of the events the id runs
// cover, in a log that had no <prefix>subjects (a new log, one of the
// layout before, or one just migrated), and drops the index of the events
// table on (subject, time) that did their work.
func (d *DB) fillSubjects(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{
		`INSERT INTO ` + d.subjects + ` (subject, time, seq)
SELECT subject, coalesce(time, ''), seq FROM ` + d.events + `
WHERE subject IS NOT NULL AND seq <= (SELECT coalesce(max(upto), 0) FROM ` + d.catalog + `)
ORDER BY 1, 2, 3`,
		`DROP INDEX IF EXISTS ` + d.events + `_subject_time`,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index the subjects of audit log %s: %w", d.where, err)
		}
	}
	return nil
}

// subjectsPerStatement is how many entries one INSERT into
// <prefix>subjects writes.
const subjectsPerStatement = 256

// insertSubjects writes entries, sorted, to <prefix>subjects in tx.
func (d *DB) insertSubjects(ctx context.Context, tx *sql.Tx, entries []subjectEntry) error {
	slices.SortFunc(entries, compareSubjectEntries)
	args := make([]any, 0, 3*subjectsPerStatement)
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	for len(entries) > 0 {
		k := min(len(entries), subjectsPerStatement)
		args = args[:0]
		for _, e := range entries[:k] {
			args = append(args, e.subject, e.time, e.seq)
		}
		var err error
		if k == subjectsPerStatement {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, d.insertSubjectsSQL(k)); err != nil {
					return fmt.Errorf("index the subjects of audit log %s: %w", d.where, err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, d.insertSubjectsSQL(k), args...)
		}
		if err != nil {
			return fmt.Errorf("index the subjects of audit log %s: %w", d.where, err)
		}
		entries = entries[k:]
	}
	return nil
}

// insertSubjectsSQL returns the statement writing k entries to
// <prefix>subjects.
func (d *DB) insertSubjectsSQL(k int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + d.subjects + " (subject, time, seq) VALUES ")
	for i := range k {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?)")
	}
	return b.String()
}
