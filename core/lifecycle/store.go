package lifecycle

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tributary/tributary/core/statedb"
)

// StoreFile is the name of the tracker's database in its directory.
const StoreFile = "lifecycle.db"

// ErrNotFound is returned by Trace for an instance the store does not hold.
var ErrNotFound = errors.New("no such instance")

// Store keeps every instance's current state and timeline in SQLite. The
// store, not memory, holds the instances: the tracker's memory does not
// grow with them. The timeline is clustered by instance (a trace reads
// neighbouring pages) and keyed by event time and id, so that an event
// delivered again finds itself there and changes nothing. Events waiting
// in the reordering window sit in a small table of their own. A Store is
// safe for concurrent use; one process writes.
type Store struct {
	db   *sql.DB
	path string
}

const schema = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS instances(
	entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
	entered_at INTEGER NOT NULL, last_event TEXT NOT NULL, updated_at INTEGER NOT NULL,
	deadline INTEGER, stuck INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY(entity, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_state ON instances(entity, state, entered_at);
CREATE INDEX IF NOT EXISTS instances_deadline ON instances(deadline) WHERE deadline IS NOT NULL AND stuck = 0;
CREATE INDEX IF NOT EXISTS instances_stuck ON instances(entity, state) WHERE stuck = 1;
CREATE TABLE IF NOT EXISTS timeline(
	entity TEXT NOT NULL, id TEXT NOT NULL, time INTEGER NOT NULL, event_id TEXT NOT NULL,
	type TEXT NOT NULL, source TEXT NOT NULL, position TEXT NOT NULL, verdict TEXT NOT NULL,
	PRIMARY KEY(entity, id, time, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held(
	seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, id TEXT NOT NULL, event_id TEXT NOT NULL,
	type TEXT NOT NULL, source TEXT NOT NULL, time INTEGER NOT NULL, position TEXT NOT NULL,
	arrived INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS held_event ON held(entity, event_id);
`

// OpenStore opens (creating when missing) the store at path; "" opens one
// in memory. cacheKiB bounds SQLite's page cache (0: its default).
func OpenStore(ctx context.Context, path string, cacheKiB int) (*Store, error) {
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
		}
	}
	// A longer log between checkpoints lets the pages that many events
	// touch (the index of states) reach the file once, not once per commit.
	db, err := statedb.Open(path, statedb.Options{Sync: statedb.SyncNormal, CacheKiB: cacheKiB, TxLock: "immediate", Pragmas: []string{"wal_autocheckpoint(16384)"}})
	if err != nil {
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("lifecycle store %s: create tables: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// OpenStoreReadOnly opens an existing store for queries (`tributary
// trace` beside a running sidecar). It fails when there is none.
func OpenStoreReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("lifecycle store %s: %w (the sidecar creates it when it runs with entities declared)", path, err)
	}
	db, err := statedb.Open(path, statedb.Options{Sync: statedb.SyncNormal, Pragmas: []string{"query_only(1)"}})
	if err != nil {
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Generation returns the store's generation, creating it when missing. A
// store created afresh (deleted, rebuilt) gets a new one, and with it the
// tracker a new consumer group that reads the stream from its beginning.
func (s *Store) Generation(ctx context.Context, want string) (string, error) {
	var g string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&g)
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("lifecycle store %s: read generation: %w", s.path, err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('generation', ?)`, want); err != nil {
		return "", fmt.Errorf("lifecycle store %s: write generation: %w", s.path, err)
	}
	return want, nil
}

// Generation returns the generation of the store in dir: the one it holds
// when its database exists, else a new random one, which the tracker
// writes into the new database when it opens. It only reads.
func Generation(dir string) (string, error) {
	path := filepath.Join(dir, StoreFile)
	if _, err := os.Stat(path); err == nil {
		st, err := OpenStoreReadOnly(context.Background(), path)
		if err == nil {
			defer st.Close()
			var g string
			if err := st.db.QueryRow(`SELECT value FROM meta WHERE key = 'generation'`).Scan(&g); err == nil {
				return g, nil
			}
		}
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Instance is one entity instance: where it is, and when it got there.
type Instance struct {
	Entity string `json:"entity"`
	ID     string `json:"id"`
	State  string `json:"state"`
	// EnteredAt is the event time of the event that put it in State.
	EnteredAt time.Time `json:"entered_at"`
	// LastEventID is the id of that event.
	LastEventID string `json:"last_event_id"`
	// UpdatedAt is when the tracker last judged an event of it.
	UpdatedAt time.Time `json:"updated_at"`
	// Stuck is true when it stayed in State past the state's limit.
	Stuck bool `json:"stuck"`
	// Timeline lists its events in event-time order (only from Trace).
	Timeline []Step `json:"timeline,omitempty"`
}

// Step is one event in an instance's timeline.
type Step struct {
	EventID string    `json:"event_id"`
	Type    string    `json:"type"`
	Source  string    `json:"source"`
	Time    time.Time `json:"time"`
	// Position is where the event lies in the stream
	// ("topic/partition/offset").
	Position string `json:"position,omitempty"`
	// Verdict is "ok", a violation's reason, or "pending" while the
	// event waits in the reordering window.
	Verdict string `json:"verdict"`
}

// Trace returns the instance id of entity with its timeline, or an error
// wrapping ErrNotFound.
func (s *Store) Trace(ctx context.Context, entity, id string) (*Instance, error) {
	in := &Instance{Entity: entity, ID: id}
	var entered, updated int64
	var stuck int
	err := s.db.QueryRowContext(ctx, `SELECT state, entered_at, last_event, updated_at, stuck FROM instances WHERE entity = ? AND id = ?`, entity, id).
		Scan(&in.State, &entered, &in.LastEventID, &updated, &stuck)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		in.State = ""
	case err != nil:
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	default:
		in.EnteredAt, in.UpdatedAt, in.Stuck = time.Unix(0, entered).UTC(), time.Unix(0, updated).UTC(), stuck == 1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT event_id, type, source, time, position, verdict FROM timeline WHERE entity = ? AND id = ?
		UNION ALL SELECT event_id, type, source, time, position, 'pending' FROM held WHERE entity = ? AND id = ? ORDER BY 4, 1`, entity, id, entity, id)
	if err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Step
		var t int64
		if err := rows.Scan(&st.EventID, &st.Type, &st.Source, &t, &st.Position, &st.Verdict); err != nil {
			return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
		}
		st.Time = time.Unix(0, t).UTC()
		in.Timeline = append(in.Timeline, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	if in.State == "" && len(in.Timeline) == 0 {
		return nil, fmt.Errorf("%s %q: %w", entity, id, ErrNotFound)
	}
	return in, nil
}

// Query selects instances for List.
type Query struct {
	Entity string
	// State, when set, keeps the instances in that state.
	State string
	// OlderThan, when positive, keeps the instances that entered their
	// state at least that long before Now.
	OlderThan time.Duration
	Now       time.Time
	// Limit bounds the answer; 0 means 1000.
	Limit int
}

// List returns the instances q selects, longest in their state first.
func (s *Store) List(ctx context.Context, q Query) ([]Instance, error) {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	before := int64(1<<63 - 1)
	if q.OlderThan > 0 {
		before = q.Now.Add(-q.OlderThan).UnixNano()
	}
	query := `SELECT id, state, entered_at, last_event, updated_at, stuck FROM instances WHERE entity = ? AND entered_at <= ?`
	args := []any{q.Entity, before}
	if q.State != "" {
		query += ` AND state = ?`
		args = append(args, q.State)
	}
	query += ` ORDER BY entered_at LIMIT ?`
	args = append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Entity, err)
	}
	defer rows.Close()
	out := []Instance{}
	for rows.Next() {
		in := Instance{Entity: q.Entity}
		var entered, updated int64
		var stuck int
		if err := rows.Scan(&in.ID, &in.State, &entered, &in.LastEventID, &updated, &stuck); err != nil {
			return nil, fmt.Errorf("list %s: %w", q.Entity, err)
		}
		in.EnteredAt, in.UpdatedAt, in.Stuck = time.Unix(0, entered).UTC(), time.Unix(0, updated).UTC(), stuck == 1
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Entity, err)
	}
	return out, nil
}
