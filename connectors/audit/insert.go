package audit

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/tributary/tributary/core"
)

// columns are the events table's columns, in the order insert writes
// them and Search reads them (Search reads the first searchColumns).
var columns = []string{
	"id", "type", "source", "subject", "time", "partition_key", "data",
	"data_base64", "datacontenttype", "dataschema", "traceparent", "position", "logged_at",
}

// searchColumns is how many of columns Search reads: those of the event.
const searchColumns = 11

// colSubject and colTime are the places of subject and time in columns.
const (
	colSubject = 3
	colTime    = 4
)

// maxRows is the most rows one INSERT statement writes: 13 or 14
// parameters a row stay far below SQLite's and PostgreSQL's limits.
const maxRows = 256

// insert logs the events of reqs in one transaction, each once: an event
// whose id the log holds is left as it is. It returns once the
// transaction committed, or with the error that undid it.
func (d *DB) insert(ctx context.Context, reqs ...*writeReq) error {
	rows := 0
	for _, r := range reqs {
		rows += len(r.ds)
	}
	if rows == 0 {
		return nil
	}
	if d.pg {
		return d.insertPostgres(ctx, rows, reqs)
	}
	return d.insertSQLite(ctx, rows, reqs)
}

// insertPostgres is insert into PostgreSQL, whose unique index on id
// leaves out the events it holds.
func (d *DB) insertPostgres(ctx context.Context, rows int, reqs []*writeReq) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction in audit log %s: %w", d.where, err)
	}
	w := len(columns)
	for _, r := range reqs {
		for rest := r.rows; len(rest) > 0; {
			n := rowsPerStatement(len(rest) / w)
			// pgx prepares and caches the statement on each connection
			// itself.
			if _, err := tx.ExecContext(ctx, d.insertSQL(n), rest[:n*w]...); err != nil {
				_ = tx.Rollback()
				return fmt.Errorf("insert %d events into %s of audit log %s: %w", n, d.events, d.where, err)
			}
			rest = rest[n*w:]
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d events to audit log %s: %w", rows, d.where, err)
	}
	return nil
}

// insertSQLite is insert into SQLite: the events whose ids neither the
// id index (see ids.go) nor an earlier event of reqs holds get the next
// seqs and are appended; their ids join the index's tail once the
// transaction commits, and a full tail is written as a run.
func (d *DB) insertSQLite(ctx context.Context, rows int, reqs []*writeReq) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	x := d.idx
	tx, err := d.w().BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction in audit log %s: %w", d.where, err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.StmtContext(ctx, d.lastSeq).QueryRowContext(ctx).Scan(&last); err != nil {
		return fmt.Errorf("read the last seq of audit log %s: %w", d.where, err)
	}
	next := max(last, x.covered, x.last) + 1
	w := len(columns)
	args := d.rowsBuf[:0]
	clear(d.pending)
	subjects := d.pendingSubj[:0]
	for _, r := range reqs {
		for off := 0; off < len(r.rows); off += w {
			id := r.rows[off].(string)
			if _, ok := d.pending[id]; ok {
				continue
			}
			held, err := d.holds(ctx, tx, id, idHash(id))
			if err != nil {
				return err
			}
			if held {
				continue
			}
			d.pending[id] = next
			if subject, ok := r.rows[off+colSubject].(string); ok {
				t, _ := r.rows[off+colTime].(string)
				subjects = append(subjects, subjectEntry{subject: subject, time: t, seq: next})
			}
			args = append(args, next)
			args = append(args, r.rows[off:off+w]...)
			next++
		}
	}
	d.rowsBuf, d.pendingSubj = args[:0], subjects[:0]
	defer clear(args) // no event is kept alive by the buffer
	for rest := args; len(rest) > 0; {
		n := rowsPerStatement(len(rest) / (w + 1))
		if _, err := tx.StmtContext(ctx, d.inserts[n]).ExecContext(ctx, rest[:n*(w+1)]...); err != nil {
			return fmt.Errorf("insert %d events into %s of audit log %s: %w", n, d.events, d.where, err)
		}
		rest = rest[n*(w+1):]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d events to audit log %s: %w", rows, d.where, err)
	}
	for id, seq := range d.pending {
		x.tail[id] = seq
	}
	x.subjects = append(x.subjects, subjects...)
	x.last = next - 1
	if len(x.tail) >= x.runSize {
		// The events are logged: a failure here leaves the tail to the
		// next commit's attempt.
		if err := d.flush(ctx); err != nil {
			d.log.Warn("writing the latest ids of the audit log as a run failed; trying again after the next commit", "error", err)
		}
	}
	return nil
}

// rowsPerStatement returns how many of n rows the next statement writes:
// the largest power of two not above n or maxRows, so that a few prepared
// statements serve batches of every size.
func rowsPerStatement(n int) int {
	k := 1
	for k*2 <= n && k*2 <= maxRows {
		k *= 2
	}
	return k
}

// prepareInserts prepares the SQLite statements inserting 1, 2, 4 ...
// maxRows events, and the one reading the last seq, for the life of the
// DB.
func (d *DB) prepareInserts(ctx context.Context) error {
	var err error
	if d.lastSeq, err = d.db.PrepareContext(ctx, `SELECT coalesce(max(seq), 0) FROM `+d.events); err != nil {
		return fmt.Errorf("prepare reading the last seq of audit log %s: %w", d.where, err)
	}
	for n := 1; n <= maxRows; n *= 2 {
		// Prepared on the pool: Tx.StmtContext prepares a statement
		// of a Conn again each time, one of the pool once per
		// connection.
		st, err := d.db.PrepareContext(ctx, d.insertSQL(n))
		if err != nil {
			return fmt.Errorf("prepare insert into %s of audit log %s: %w", d.events, d.where, err)
		}
		d.inserts[n] = st
	}
	return nil
}

// insertSQL returns the statement inserting n rows: in SQLite with their
// seq first.
func (d *DB) insertSQL(n int) string {
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	if q, ok := d.insertTexts[n]; ok {
		return q
	}
	cols := columns
	if !d.pg {
		cols = append([]string{"seq"}, columns...)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(d.events)
	b.WriteString(" (")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(") VALUES ")
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range cols {
			if j > 0 {
				b.WriteByte(',')
			}
			d.param(&b, p)
			p++
		}
		b.WriteByte(')')
	}
	if d.pg {
		b.WriteString(" ON CONFLICT (id) DO NOTHING")
	}
	q := b.String()
	d.insertTexts[n] = q
	return q
}

// rows returns the column values of the events of ds, one row after the
// other, logged at loggedAt.
func (d *DB) rows(ds []core.Delivery, loggedAt time.Time) []any {
	logged := d.timeArg(loggedAt)
	out := make([]any, 0, len(ds)*len(columns))
	for _, dl := range ds {
		out = d.appendRow(out, dl.Event, dl.Position, logged)
	}
	return out
}

// appendRow appends the column values of e, at position of the stream,
// to args.
func (d *DB) appendRow(args []any, e *core.Event, position string, logged any) []any {
	data, data64 := dataColumns(e)
	return append(args,
		d.text(e.ID), d.text(e.Type), d.text(e.Source), d.nullText(e.Subject),
		d.timeArg(e.Time), d.nullText(e.PartitionKey), data, data64,
		d.nullText(e.DataContentType), d.nullText(e.DataSchema), d.nullText(e.TraceParent),
		d.nullText(position), logged)
}

// dataColumns returns the data and data_base64 columns of e: JSON data as
// its text, other data (or JSON declared with another content type, or
// bytes that are not UTF-8) in base64, as CloudEvents' structured mode
// carries them. Each event's data is checked (see validJSON): the stream
// may carry anything.
func dataColumns(e *core.Event) (data, data64 any) {
	if len(e.Data) == 0 {
		return nil, nil
	}
	ct := e.DataContentType
	if (ct == "" || strings.Contains(ct, "json")) && utf8.Valid(e.Data) && validJSON(e.Data) {
		// The text shares the event's bytes rather than copying 1 KB an
		// event: a delivered event is not modified (core.Delivery), and
		// the driver copies the text when it binds it.
		return unsafe.String(unsafe.SliceData(e.Data), len(e.Data)), nil
	}
	return nil, base64.StdEncoding.EncodeToString(e.Data)
}

// text returns s as a text column takes it. PostgreSQL refuses text that
// is not UTF-8 or holds a NUL: such an attribute would fail its batch on
// every attempt, so its bad bytes are replaced.
func (d *DB) text(s string) string {
	if d.pg && (strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s)) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	return s
}

// nullText is text, with NULL for the empty string.
func (d *DB) nullText(s string) any {
	if s == "" {
		return nil
	}
	return d.text(s)
}
