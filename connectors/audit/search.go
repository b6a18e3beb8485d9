package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// Query selects events of the audit log. Its zero value selects every
// event. Replays record the Query that chose their events, as JSON.
type Query struct {
	// Types keeps events of any of these types (exact names); empty keeps
	// every type.
	Types []string `json:"types,omitempty"`
	// Subject keeps events with exactly this subject.
	Subject string `json:"subject,omitempty"`
	// Since keeps events whose time is at or after it.
	Since time.Time `json:"since,omitzero"`
	// Until keeps events whose time is before it.
	Until time.Time `json:"until,omitzero"`
	// ID keeps the event with this id.
	ID string `json:"id,omitempty"`
	// Limit is the most events returned; 0 returns every match.
	Limit int `json:"limit,omitempty"`
}

// Search returns the events of the log that q selects, in time order
// (events with no time first, ties in id order): the first q.Limit of
// them when q.Limit is positive. A time filter leaves out events with no
// time. The events are as they were on the stream, but for their time,
// which a PostgreSQL log keeps to the microsecond and both return in UTC.
func Search(ctx context.Context, db *DB, q Query) ([]core.Event, error) {
	var out []core.Event
	err := Scan(ctx, db, q, func(e *core.Event) error {
		out = append(out, *e)
		return nil
	})
	return out, err
}

// scanPage is how many events Scan reads in one query.
const scanPage = 1000

// Scan calls fn with each event q selects, in Search's order, and stops
// at fn's first error, which it returns. It reads the log a page at a
// time, each page in a query of its own, so that a long scan holds
// neither the events in memory nor a read transaction open (which would
// keep a SQLite log's write-ahead log from being checkpointed).
func Scan(ctx context.Context, db *DB, q Query, fn func(*core.Event) error) error {
	var after *core.Event
	n := 0
	for {
		page := scanPage
		if q.Limit > 0 {
			page = min(page, q.Limit-n)
		}
		evs, err := db.page(ctx, q, after, page)
		if err != nil {
			return err
		}
		for i := range evs {
			if err := fn(&evs[i]); err != nil {
				return err
			}
		}
		n += len(evs)
		if len(evs) < page || (q.Limit > 0 && n >= q.Limit) {
			return nil
		}
		after = &evs[len(evs)-1]
	}
}

// page returns up to limit events q selects that come after the event
// after (from the first when nil) in Search's order.
func (db *DB) page(ctx context.Context, q Query, after *core.Event, limit int) ([]core.Event, error) {
	if q.Subject == "" || !db.bySubjects {
		query, args, ok, err := db.pageQuery(ctx, q, after, limit, armAll)
		if err != nil || !ok {
			return nil, err
		}
		return db.readPage(ctx, db.db, query, args)
	}
	// A search by subject reads the subjects' index and the tail (see
	// subjects.go), each in order and up to limit, in one read
	// transaction, so that a run written between the two reads neither
	// hides events nor shows them twice; and merges them.
	tx, err := db.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("search audit log %s: %w", db.where, err)
	}
	defer tx.Rollback()
	var pages [2][]core.Event
	for i, arm := range []searchArm{armIndexed, armTail} {
		query, args, ok, err := db.pageQuery(ctx, q, after, limit, arm)
		if err != nil || !ok {
			return nil, err
		}
		if pages[i], err = db.readPage(ctx, tx, query, args); err != nil {
			return nil, err
		}
	}
	out := make([]core.Event, 0, min(limit, len(pages[0])+len(pages[1])))
	a, b := pages[0], pages[1]
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && compareEvents(&a[0], &b[0]) < 0) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out, nil
}

// compareEvents orders events as Search returns them: by time, events
// with none first, then by id.
func compareEvents(a, b *core.Event) int {
	switch {
	case a.Time.IsZero() != b.Time.IsZero():
		if a.Time.IsZero() {
			return -1
		}
		return 1
	case !a.Time.Equal(b.Time):
		return a.Time.Compare(b.Time)
	}
	return strings.Compare(a.ID, b.ID)
}

// searchArm is which events of the log a page query reads.
type searchArm int

const (
	// armAll reads the events table as a whole.
	armAll searchArm = iota
	// armIndexed reads the events of a subject through <prefix>subjects,
	// in its order.
	armIndexed
	// armTail reads the events of a subject above the id runs.
	armTail
)

// pageQuery returns the query of page reading arm, and its arguments;
// ok is false when no event can match.
func (db *DB) pageQuery(ctx context.Context, q Query, after *core.Event, limit int, arm searchArm) (query string, args []any, ok bool, err error) {
	var b strings.Builder
	e := ""
	b.WriteString("SELECT ")
	if arm == armIndexed {
		// The subjects' index gives the rows in time order (its time
		// is '' for none, which comes first as NULL does), so that
		// the query stops after limit rows.
		e = "e."
		for i, c := range columns[:searchColumns] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(e + c)
		}
		b.WriteString(" FROM " + db.subjects + " s CROSS JOIN " + db.events + " e ON e.seq = s.seq")
	} else {
		b.WriteString(strings.Join(columns[:searchColumns], ", "))
		b.WriteString(" FROM ")
		b.WriteString(db.events)
	}
	conds := 0
	where := func() {
		if conds == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		conds++
	}
	arg := func(v any) {
		args = append(args, v)
		db.param(&b, len(args))
	}
	cond := func(expr string, v any) {
		where()
		b.WriteString(expr)
		arg(v)
	}
	switch arm {
	case armIndexed:
		cond("s.subject = ", q.Subject)
		if !q.Since.IsZero() {
			cond("s.time >= ", db.timeArg(q.Since))
		}
		if !q.Until.IsZero() {
			cond("s.time < ", db.timeArg(q.Until))
		}
		if after != nil && !after.Time.IsZero() {
			cond("s.time >= ", db.timeArg(after.Time))
		}
	case armTail:
		where()
		b.WriteString("seq > (SELECT coalesce(max(upto), 0) FROM " + db.catalog + ")")
	}
	if q.ID != "" {
		if db.byRuns() {
			// The id runs find the row; the events table has no index
			// of ids.
			seq, found, err := db.find(ctx, q.ID)
			if err != nil || !found {
				return "", nil, false, err
			}
			cond(e+"seq = ", seq)
		}
		cond(e+"id = ", q.ID)
	}
	if q.Subject != "" {
		cond(e+"subject = ", q.Subject)
	}
	if !q.Since.IsZero() {
		cond(e+"time >= ", db.timeArg(q.Since))
	}
	if !q.Until.IsZero() {
		cond(e+"time < ", db.timeArg(q.Until))
	}
	for i, t := range q.Types {
		if i == 0 {
			where()
			b.WriteString(e + "type IN (")
		} else {
			b.WriteByte(',')
		}
		arg(t)
		if i == len(q.Types)-1 {
			b.WriteByte(')')
		}
	}
	if after != nil {
		where()
		if after.Time.IsZero() {
			b.WriteString("((" + e + "time IS NULL AND " + e + "id > ")
			arg(after.ID)
			b.WriteString(") OR " + e + "time IS NOT NULL)")
		} else {
			t := db.timeArg(after.Time)
			b.WriteString("(" + e + "time > ")
			arg(t)
			b.WriteString(" OR (" + e + "time = ")
			arg(t)
			b.WriteString(" AND " + e + "id > ")
			arg(after.ID)
			b.WriteString("))")
		}
	}
	if arm == armIndexed {
		b.WriteString(" ORDER BY s.time, e.id LIMIT ")
	} else {
		b.WriteString(" ORDER BY time")
		if db.pg {
			b.WriteString(" NULLS FIRST")
		}
		b.WriteString(", id LIMIT ")
	}
	arg(limit)
	return b.String(), args, true, nil
}

// readPage runs a page query on q and reads its events.
func (db *DB) readPage(ctx context.Context, q querier, query string, args []any) ([]core.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search audit log %s: %w", db.where, err)
	}
	defer rows.Close()
	var out []core.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("read audit log %s: %w", db.where, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search audit log %s: %w", db.where, err)
	}
	return out, nil
}

// Holds reports whether the log holds the event with id.
func Holds(ctx context.Context, db *DB, id string) (bool, error) {
	if db.byRuns() {
		_, ok, err := db.find(ctx, id)
		return ok, err
	}
	var b strings.Builder
	b.WriteString("SELECT count(*) FROM " + db.events + " WHERE id = ")
	db.param(&b, 1)
	var n int
	if err := db.db.QueryRowContext(ctx, b.String(), id).Scan(&n); err != nil {
		return false, fmt.Errorf("look for event %s in audit log %s: %w", id, db.where, err)
	}
	return n > 0, nil
}

// scanEvent reads a row of the columns Search selects.
func scanEvent(rows *sql.Rows) (core.Event, error) {
	var (
		e                                                   core.Event
		subject, key, data, data64, ct, schema, traceparent sql.NullString
		t                                                   nullTime
	)
	if err := rows.Scan(&e.ID, &e.Type, &e.Source, &subject, &t, &key, &data, &data64, &ct, &schema, &traceparent); err != nil {
		return e, err
	}
	e.SpecVersion = core.SpecVersion
	e.Subject, e.PartitionKey, e.DataContentType = subject.String, key.String, ct.String
	e.DataSchema, e.TraceParent, e.Time = schema.String, traceparent.String, t.t
	switch {
	case data.Valid:
		e.Data = json.RawMessage(data.String)
	case data64.Valid:
		b, err := base64.StdEncoding.DecodeString(data64.String)
		if err != nil {
			return e, fmt.Errorf("event %s: data_base64: %w", e.ID, err)
		}
		e.Data = b
	}
	return e, nil
}
