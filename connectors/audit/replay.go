package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Replay is the record of one replay: events delivered again to a sink on
// an operator's request.
type Replay struct {
	// ID identifies the replay; RecordReplay makes one up when empty.
	ID string
	// At is when the replay ran; RecordReplay uses the current time when
	// it is zero.
	At time.Time
	// Who asked for it: a user name, or the admin API's client address.
	Who string
	// Sink is the sink the events went to again.
	Sink string
	// Filter chose the events (Limit unused).
	Filter Query
	// Count is how many events were delivered again.
	Count int64
}

// RecordReplay adds r to the log's replays and returns its id. Recording
// one id twice is an error.
func RecordReplay(ctx context.Context, db *DB, r Replay) (string, error) {
	if r.ID == "" {
		r.ID = uuid.NewString()
	}
	if r.At.IsZero() {
		r.At = time.Now()
	}
	filter, err := json.Marshal(r.Filter)
	if err != nil {
		return "", fmt.Errorf("encode filter of replay %s: %w", r.ID, err)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + db.replays + " (id, at, who, sink, filter, count) VALUES (")
	for i := range 6 {
		if i > 0 {
			b.WriteByte(',')
		}
		db.param(&b, i+1)
	}
	b.WriteByte(')')
	if !db.pg {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
	}
	if _, err := db.w().ExecContext(ctx, b.String(), r.ID, db.timeArg(r.At), db.text(r.Who), db.text(r.Sink), string(filter), r.Count); err != nil {
		return "", fmt.Errorf("record replay %s in audit log %s: %w", r.ID, db.where, err)
	}
	return r.ID, nil
}

// Replays returns the replays the log records, oldest first.
func Replays(ctx context.Context, db *DB) ([]Replay, error) {
	rows, err := db.db.QueryContext(ctx, "SELECT id, at, who, sink, filter, count FROM "+db.replays+" ORDER BY at, id")
	if err != nil {
		return nil, fmt.Errorf("read replays of audit log %s: %w", db.where, err)
	}
	defer rows.Close()
	var out []Replay
	for rows.Next() {
		var (
			r      Replay
			at     nullTime
			filter sql.NullString
		)
		if err := rows.Scan(&r.ID, &at, &r.Who, &r.Sink, &filter, &r.Count); err != nil {
			return nil, fmt.Errorf("read replays of audit log %s: %w", db.where, err)
		}
		r.At = at.t
		if err := json.Unmarshal([]byte(filter.String), &r.Filter); err != nil {
			return nil, fmt.Errorf("replay %s in audit log %s: filter: %w", r.ID, db.where, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read replays of audit log %s: %w", db.where, err)
	}
	return out, nil
}
