package runtime

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/statedb"
)

// This file is a sink's retry store: the events of keys that wait long for
// a retry, parked in SQLite in the sink's state directory, so that the
// sink commits its offsets past them and holds none of them in memory.
// A parked key's head waits for its due time; the events of the key read
// meanwhile are parked behind it, in order; once due, the key's events are
// loaded as Writes take them and delivered, each removed from the store once
// delivered or dead-lettered, and the key is no longer parked when none is
// left.

// parkFormat is the version of the retry store's layout (user_version).
const parkFormat = 1

var parkSchema = []string{
	`CREATE TABLE IF NOT EXISTS parked_keys (
		key TEXT PRIMARY KEY,
		due INTEGER NOT NULL
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS parked_events (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		key TEXT NOT NULL,
		event_id TEXT NOT NULL UNIQUE,
		attempt INTEGER NOT NULL,
		uuid TEXT NOT NULL,
		metadata TEXT NOT NULL,
		payload BLOB
	)`,
	`CREATE INDEX IF NOT EXISTS parked_events_key ON parked_events (key, seq)`,
}

// parkStore is a sink's retry store. Only the sink's loop uses it.
type parkStore struct {
	db   *sql.DB
	path string
}

// parkedKey is a parked key as the store has it.
type parkedKey struct {
	key    string
	due    time.Time
	events int
}

// storedEvent is a parked event read back.
type storedEvent struct {
	row     int64
	attempt int
	msg     *message.Message
}

// openParkStore opens (creating it when missing) the retry store in dir.
func openParkStore(ctx context.Context, dir string) (*parkStore, error) {
	path := filepath.Join(dir, "retry.db")
	db, err := statedb.Open(path, statedb.Options{})
	if err != nil {
		return nil, fmt.Errorf("open retry store %s: %w", path, err)
	}
	p := &parkStore{db: db, path: path}
	if err := p.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return p, nil
}

func (p *parkStore) migrate(ctx context.Context) error {
	var v int
	if err := p.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("read retry store %s: %w", p.path, err)
	}
	if v > parkFormat {
		return fmt.Errorf("retry store %s has format %d, newer than this version of tributary reads (%d); run the newer version, or move the file away to drop the parked events", p.path, v, parkFormat)
	}
	for _, q := range parkSchema {
		if _, err := p.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create retry store %s: %w", p.path, err)
		}
	}
	if _, err := p.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, parkFormat)); err != nil {
		return fmt.Errorf("create retry store %s: %w", p.path, err)
	}
	return nil
}

func (p *parkStore) close() error { return p.db.Close() }

// keys returns every parked key, with its due time and how many events it
// has.
func (p *parkStore) keys(ctx context.Context) ([]parkedKey, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT k.key, k.due, (SELECT COUNT(*) FROM parked_events e WHERE e.key = k.key) FROM parked_keys k`)
	if err != nil {
		return nil, fmt.Errorf("read retry store %s: %w", p.path, err)
	}
	defer rows.Close()
	var out []parkedKey
	for rows.Next() {
		var k parkedKey
		var due int64
		if err := rows.Scan(&k.key, &due, &k.events); err != nil {
			return nil, fmt.Errorf("read retry store %s: %w", p.path, err)
		}
		k.due = time.Unix(0, due)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read retry store %s: %w", p.path, err)
	}
	return out, nil
}

// park parks key until due with items, in order. An event already parked
// (the same id, parked before a crash undid its commit) is not parked
// twice. It returns how many events the key has in the store.
func (p *parkStore) park(ctx context.Context, key string, due time.Time, items []*sinkItem) (int, error) {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO parked_keys (key, due) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET due = excluded.due`, key, due.UnixNano()); err != nil {
		return 0, fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	for _, it := range items {
		if _, err := insertParked(ctx, tx, key, it); err != nil {
			return 0, fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM parked_events WHERE key = ?`, key).Scan(&n); err != nil {
		return 0, fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	return n, nil
}

// add parks it behind the events of key, which is parked. It reports
// whether it was added (false: an event with its id is parked already).
func (p *parkStore) add(ctx context.Context, key string, it *sinkItem) (bool, error) {
	res, err := insertParked(ctx, p.db, key, it)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return false, fmt.Errorf("park an event of key %q in retry store %s: %w", key, p.path, err)
	}
	return n > 0, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertParked(ctx context.Context, db execer, key string, it *sinkItem) (sql.Result, error) {
	md, err := json.Marshal(it.msg.Metadata)
	if err != nil {
		return nil, err
	}
	return db.ExecContext(ctx, `INSERT OR IGNORE INTO parked_events (key, event_id, attempt, uuid, metadata, payload) VALUES (?, ?, ?, ?, ?, ?)`,
		key, it.ev.ID, it.attempt, it.msg.UUID, string(md), []byte(it.msg.Payload))
}

// repark records that key's head, row, waits until due after attempt
// failed deliveries.
func (p *parkStore) repark(ctx context.Context, key string, due time.Time, row int64, attempt int) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `UPDATE parked_keys SET due = ? WHERE key = ?`, due.UnixNano(), key); err != nil {
		return fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE parked_events SET attempt = ? WHERE seq = ?`, attempt, row); err != nil {
		return fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("park key %q in retry store %s: %w", key, p.path, err)
	}
	return nil
}

// load returns up to limit of key's events, oldest first.
func (p *parkStore) load(ctx context.Context, key string, limit int) ([]storedEvent, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT seq, attempt, uuid, metadata, payload FROM parked_events WHERE key = ? ORDER BY seq LIMIT ?`, key, limit)
	if err != nil {
		return nil, fmt.Errorf("load parked events of key %q from retry store %s: %w", key, p.path, err)
	}
	defer rows.Close()
	var out []storedEvent
	for rows.Next() {
		var e storedEvent
		var uuid, md string
		var payload []byte
		if err := rows.Scan(&e.row, &e.attempt, &uuid, &md, &payload); err != nil {
			return nil, fmt.Errorf("load parked events of key %q from retry store %s: %w", key, p.path, err)
		}
		e.msg = message.NewMessage(uuid, payload)
		if err := json.Unmarshal([]byte(md), &e.msg.Metadata); err != nil {
			return nil, fmt.Errorf("load parked event %d of key %q from retry store %s: metadata: %w", e.row, key, p.path, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load parked events of key %q from retry store %s: %w", key, p.path, err)
	}
	return out, nil
}

// remove drops the parked event row of key; with last, key is no longer
// parked.
func (p *parkStore) remove(ctx context.Context, key string, row int64, last bool) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("remove a parked event of key %q from retry store %s: %w", key, p.path, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM parked_events WHERE seq = ?`, row); err != nil {
		return fmt.Errorf("remove a parked event of key %q from retry store %s: %w", key, p.path, err)
	}
	if last {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM parked_events WHERE key = ?`, key).Scan(&n); err != nil {
			return fmt.Errorf("remove a parked event of key %q from retry store %s: %w", key, p.path, err)
		}
		if n != 0 {
			return fmt.Errorf("retry store %s: key %q has %d parked events where none was expected", p.path, key, n)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM parked_keys WHERE key = ?`, key); err != nil {
			return fmt.Errorf("unpark key %q in retry store %s: %w", key, p.path, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("remove a parked event of key %q from retry store %s: %w", key, p.path, err)
	}
	return nil
}

// loadParked takes the keys parked in the store: each waits for its due
// time, then its events are loaded and delivered.
func (l *sinkLoop) loadParked(ctx context.Context) error {
	if l.store == nil {
		return nil
	}
	keys, err := l.store.keys(ctx)
	if err != nil {
		return err
	}
	for _, pk := range keys {
		k := &sinkKey{name: pk.key, parked: true, stored: pk.events, due: pk.due}
		l.keys[pk.key] = k
		l.s.retriesPending.Add(1)
		l.schedule(k)
	}
	if len(keys) > 0 {
		l.s.log.Info("keys parked for a retry", "keys", len(keys), "store", l.store.path)
	}
	return nil
}

// park moves k's events to the retry store, where they wait until k.due:
// the events read from the stream are acked once parked, and those loaded
// from the store stay there with the head's new attempt count.
func (l *sinkLoop) park(k *sinkKey) {
	if len(k.items) == 0 {
		return
	}
	if k.parked {
		head := k.items[0]
		if err := l.store.repark(l.pubCtx, k.name, k.due, head.row, head.attempt); err != nil {
			l.err = err
			return
		}
		for _, it := range k.items {
			if it.failed {
				l.s.retriesPending.Add(-1)
			}
		}
		clear(k.items)
		k.items = nil
		return
	}
	n, err := l.store.park(l.pubCtx, k.name, k.due, k.items)
	if err != nil {
		// The events stay in memory and unacked; the session ends and
		// they are read again.
		l.err = err
		return
	}
	items := k.items
	k.items = nil
	k.parked, k.stored = true, n
	l.s.retriesPending.Add(1)
	for _, it := range items {
		l.finish(it)
	}
	l.s.log.Info("key parked for a retry", "key", k.name, "events", n, "until", k.due)
}

// unpark loads up to limit of the next events of the parked key k from
// the store.
func (l *sinkLoop) unpark(k *sinkKey, limit int) {
	evs, err := l.store.load(l.pubCtx, k.name, limit)
	if err != nil {
		l.err = err
		return
	}
	if len(evs) == 0 {
		// The count was off: nothing is left of the key.
		if err := l.store.remove(l.pubCtx, k.name, 0, true); err != nil {
			l.err = err
			return
		}
		l.unparked(k)
		return
	}
	k.stored = max(k.stored, len(evs))
	for _, e := range evs {
		it := &sinkItem{msg: e.msg, key: k.name, attempt: e.attempt, row: e.row}
		ev, err := core.EventFromMessage(e.msg)
		if err != nil {
			// Parked events were CloudEvents when parked.
			l.err = fmt.Errorf("retry store %s: parked event %d of key %q: %w", l.store.path, e.row, k.name, err)
			return
		}
		it.ev, it.appended = ev, appendTime(ev)
		if !l.prepare(it) {
			// Skipped or dead-lettered under the current configuration.
			continue
		}
		k.items = append(k.items, it)
	}
}

// unstore removes it, delivered or dead-lettered, from the store; the key
// is no longer parked once none of its events is left there.
func (l *sinkLoop) unstore(it *sinkItem) {
	k := l.keys[it.key]
	if k == nil {
		// Not expected: the key is known while it is parked. The row goes.
		if err := l.store.remove(l.pubCtx, it.key, it.row, false); err != nil {
			l.err = err
		}
		return
	}
	last := k.stored <= 1
	if err := l.store.remove(l.pubCtx, it.key, it.row, last); err != nil {
		l.err = err
		return
	}
	k.stored--
	if last {
		l.unparked(k)
	}
}

func (l *sinkLoop) unparked(k *sinkKey) {
	k.parked, k.stored = false, 0
	l.s.retriesPending.Add(-1)
}
