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
// them and Search reads them (Search leaves out logged_at).
var columns = []string{
	"id", "type", "source", "subject", "time", "partition_key", "data",
	"data_base64", "datacontenttype", "dataschema", "traceparent", "logged_at",
}

// maxRows is the most rows one INSERT statement writes: 12 parameters a
// row stay far below SQLite's and PostgreSQL's limits.
const maxRows = 256

// insert logs the events of ds in one transaction, each once: an event
// whose id the log holds is left as it is. It returns once the
// transaction committed, or with the error that undid it.
func (d *DB) insert(ctx context.Context, ds []core.Delivery, loggedAt time.Time) error {
	if len(ds) == 0 {
		return nil
	}
	if !d.pg {
		d.writeMu.Lock()
		defer d.writeMu.Unlock()
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction in audit log %s: %w", d.where, err)
	}
	logged := d.timeArg(loggedAt)
	args := make([]any, 0, min(len(ds), maxRows)*len(columns))
	for rest := ds; len(rest) > 0; {
		n := rowsPerStatement(len(rest))
		st, err := d.insertStmt(ctx, n)
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		args = args[:0]
		for _, dl := range rest[:n] {
			args = d.appendRow(args, dl.Event, logged)
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("insert %d events into %s of audit log %s: %w", n, d.events, d.where, err)
		}
		rest = rest[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %d events to audit log %s: %w", len(ds), d.where, err)
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

// insertStmt returns the prepared statement inserting n rows.
func (d *DB) insertStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	d.stmtMu.Lock()
	defer d.stmtMu.Unlock()
	if st, ok := d.inserts[n]; ok {
		return st, nil
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
	st, err := d.db.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("prepare insert into %s of audit log %s: %w", d.events, d.where, err)
	}
	d.inserts[n] = st
	return st, nil
}

// appendRow appends the column values of e to args.
func (d *DB) appendRow(args []any, e *core.Event, logged any) []any {
	data, data64 := dataColumns(e)
	return append(args,
		d.text(e.ID), d.text(e.Type), d.text(e.Source), d.nullText(e.Subject),
		d.timeArg(e.Time), d.nullText(e.PartitionKey), data, data64,
		d.nullText(e.DataContentType), d.nullText(e.DataSchema), d.nullText(e.TraceParent),
		logged)
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
