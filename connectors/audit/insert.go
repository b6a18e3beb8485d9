package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

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

// maxRows is the most rows one INSERT statement writes: 12 parameters a
// row stay far below SQLite's and PostgreSQL's limits.
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
	var stmts map[int]*sql.Stmt
	if !d.pg {
		// Prepared before the transaction holds a connection, so that
		// preparing never waits for one.
		var err error
		if stmts, err = d.prepared(ctx, reqs); err != nil {
			return err
		}
		d.writeMu.Lock()
		defer d.writeMu.Unlock()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction in audit log %s: %w", d.where, err)
	}
	w := len(columns)
	for _, r := range reqs {
		for rest := r.rows; len(rest) > 0; {
			n := rowsPerStatement(len(rest) / w)
			args := rest[:n*w]
			if d.pg {
				// pgx prepares and caches the statement on each
				// connection itself.
				_, err = tx.ExecContext(ctx, d.insertSQL(n), args...)
			} else {
				_, err = tx.StmtContext(ctx, stmts[n]).ExecContext(ctx, args...)
			}
			if err != nil {
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

// prepared returns the statements, by rows, that inserting the events of
// reqs takes, each prepared once for the life of the DB.
func (d *DB) prepared(ctx context.Context, reqs []*writeReq) (map[int]*sql.Stmt, error) {
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	out := map[int]*sql.Stmt{}
	for _, r := range reqs {
		for left := len(r.ds); left > 0; {
			n := rowsPerStatement(left)
			left -= n
			if out[n] != nil {
				continue
			}
			st, ok := d.inserts[n]
			if !ok {
				var err error
				if st, err = d.db.PrepareContext(ctx, d.insertSQLLocked(n)); err != nil {
					return nil, fmt.Errorf("prepare insert into %s of audit log %s: %w", d.events, d.where, err)
				}
				d.inserts[n] = st
			}
			out[n] = st
		}
	}
	return out, nil
}

// insertSQL returns the statement inserting n rows.
func (d *DB) insertSQL(n int) string {
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	return d.insertSQLLocked(n)
}

// insertSQLLocked is insertSQL with stmtMu held.
func (d *DB) insertSQLLocked(n int) string {
	if q, ok := d.insertTexts[n]; ok {
		return q
	}
	var b strings.Builder
	if d.pg {
		b.WriteString("INSERT INTO ")
	} else {
		b.WriteString("INSERT OR IGNORE INTO ")
	}
	b.WriteString(d.events)
	b.WriteString(" (")
	b.WriteString(strings.Join(columns, ", "))
	b.WriteString(") VALUES ")
	p := 1
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range columns {
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
// carries them.
func dataColumns(e *core.Event) (data, data64 any) {
	if len(e.Data) == 0 {
		return nil, nil
	}
	ct := e.DataContentType
	if (ct == "" || strings.Contains(ct, "json")) && json.Valid(e.Data) && utf8.Valid(e.Data) {
		return string(e.Data), nil
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
