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
	var b strings.Builder
	var args []any
	b.WriteString("SELECT ")
	b.WriteString(strings.Join(columns[:searchColumns], ", "))
	b.WriteString(" FROM ")
	b.WriteString(db.events)
	cond := func(expr string, v any) {
		if len(args) == 0 {
			b.WriteString(" WHERE ")
		} else {
			b.WriteString(" AND ")
		}
		args = append(args, v)
		b.WriteString(expr)
		db.param(&b, len(args))
	}
	if q.ID != "" {
		cond("id = ", q.ID)
	}
	if q.Subject != "" {
		cond("subject = ", q.Subject)
	}
	if !q.Since.IsZero() {
		cond("time >= ", db.timeArg(q.Since))
	}
	if !q.Until.IsZero() {
		cond("time < ", db.timeArg(q.Until))
	}
	for i, t := range q.Types {
		switch {
		case i == 0 && len(args) == 0:
			b.WriteString(" WHERE type IN (")
		case i == 0:
			b.WriteString(" AND type IN (")
		default:
			b.WriteByte(',')
		}
		args = append(args, t)
		db.param(&b, len(args))
		if i == len(q.Types)-1 {
			b.WriteByte(')')
		}
	}
	b.WriteString(" ORDER BY time")
	if db.pg {
		b.WriteString(" NULLS FIRST")
	}
	b.WriteString(", id")
	if q.Limit > 0 {
		args = append(args, q.Limit)
		b.WriteString(" LIMIT ")
		db.param(&b, len(args))
	}
	rows, err := db.db.QueryContext(ctx, b.String(), args...)
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
