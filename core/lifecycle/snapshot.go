package lifecycle

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tributary/tributary/core/statedb"
)

// SnapshotFile is the name, in the store's directory, of the snapshot of
// every instance's current state that the tracker writes in the
// background. Start-up loads it and replays the log after it; `tributary
// trace` finds an instance's latest event in it.
const SnapshotFile = "lifecycle-snapshot.db"

const snapshotSchema = `
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE instances(
	entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, entered INTEGER NOT NULL,
	updated INTEGER NOT NULL, last_event TEXT NOT NULL, head INTEGER NOT NULL, bloom INTEGER NOT NULL,
	PRIMARY KEY(entity, id)) WITHOUT ROWID;
`

// snapshotRows is how many rows one INSERT of a snapshot writes.
const snapshotRows = 64

// snapshot is a copy of the table taken between two judgings: the state
// every event judged up to judged left the instances in. The events
// waiting in the window at that moment, and every later one, have a log
// sequence of at least from.
type snapshot struct {
	slots        []slot
	arena        [][]byte
	names        []string   // entity per slot.mach
	states       [][]string // state names per entity, by code-1
	judged, from int64
	// crash, when set, is called at each step of writing; an error
	// stops the writing there.
	crash func(step string) error
}

// snapshotEntry is one instance of a snapshot.
type snapshotEntry struct {
	entity, id, state, last string
	entered, updated, head  int64
	bloom                   uint64
}

// atCrashPoint calls sn.crash, which tests set to stop the writing at a
// step as a crash would.
func (sn *snapshot) atCrashPoint(step string) error {
	if sn.crash == nil {
		return nil
	}
	return sn.crash(step)
}

// entries decodes the snapshot's instances, sorted by entity and id.
func (sn *snapshot) entries() []snapshotEntry {
	out := make([]snapshotEntry, 0, len(sn.slots))
	tb := &table{arena: sn.arena}
	for _, s := range sn.slots {
		if s.head == 0 && s.state == 0 {
			continue // added by a batch that was not stored
		}
		id, last := tb.record(s.ref)
		e := snapshotEntry{entity: sn.names[s.mach], id: id, last: last, entered: s.entered, updated: s.updated, head: s.head, bloom: s.bloom}
		if s.state > 0 {
			e.state = sn.states[s.mach][s.state-1]
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b snapshotEntry) int {
		return cmp.Or(strings.Compare(a.entity, b.entity), strings.Compare(a.id, b.id))
	})
	return out
}

// write writes the snapshot to path: into path.tmp, synced, then renamed
// over path, so that a crash at any step leaves the snapshot before
// whole (and a .tmp file that the next start removes).
func (sn *snapshot) write(ctx context.Context, path string) error {
	tmp := path + ".tmp"
	if err := removeTemp(path); err != nil {
		return err
	}
	db, err := statedb.Open(tmp, statedb.Options{DeferWAL: true, Pragmas: []string{"journal_mode(OFF)", "synchronous(OFF)"}})
	if err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	defer db.Close()
	werr := func(err error) error { return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err) }
	if _, err := db.ExecContext(ctx, snapshotSchema); err != nil {
		return werr(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return werr(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES('judged', ?), ('from', ?)`, sn.judged, sn.from); err != nil {
		return werr(err)
	}
	es := sn.entries()
	if err := sn.atCrashPoint("writing"); err != nil {
		return err
	}
	many, err := tx.PrepareContext(ctx, `INSERT INTO instances VALUES `+strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", snapshotRows), ","))
	if err != nil {
		return werr(err)
	}
	defer many.Close()
	one, err := tx.PrepareContext(ctx, `INSERT INTO instances VALUES (?,?,?,?,?,?,?,?)`)
	if err != nil {
		return werr(err)
	}
	defer one.Close()
	args := make([]any, 0, snapshotRows*8)
	for len(es) > 0 {
		n, st := snapshotRows, many
		if len(es) < snapshotRows {
			n, st = 1, one
		}
		args = args[:0]
		for _, e := range es[:n] {
			args = append(args, e.entity, e.id, e.state, e.entered, e.updated, e.last, e.head, int64(e.bloom))
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return werr(err)
		}
		es = es[n:]
	}
	if err := tx.Commit(); err != nil {
		return werr(err)
	}
	if err := db.Close(); err != nil {
		return werr(err)
	}
	if err := sn.atCrashPoint("written"); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return werr(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return werr(err)
	}
	if err := sn.atCrashPoint("renamed"); err != nil {
		return err
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return werr(err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// removeTemp removes what a snapshot interrupted by a crash left.
func removeTemp(path string) error {
	for _, f := range []string{path + ".tmp", path + ".tmp-journal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove unfinished lifecycle snapshot: %w", err)
		}
	}
	return nil
}

// openSnapshot opens the snapshot at path for reading, or returns nil
// when there is none.
func openSnapshot(ctx context.Context, path string) (*sql.DB, int64, int64, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, 0, 0, nil
	}
	db, err := statedb.Open(path, statedb.Options{DeferWAL: true, Pragmas: []string{"query_only(1)"}})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("lifecycle snapshot %s: %w", path, err)
	}
	var judged, from int64
	err = db.QueryRowContext(ctx, `SELECT (SELECT value FROM meta WHERE key = 'judged'), (SELECT value FROM meta WHERE key = 'from')`).Scan(&judged, &from)
	if err != nil {
		db.Close()
		return nil, 0, 0, fmt.Errorf("lifecycle snapshot %s: %w (remove it: the tracker then rebuilds its state from the log)", path, err)
	}
	return db, judged, from, nil
}

// loadSnapshot calls fn with each instance of the snapshot at path and
// returns its judged and from (0 and 0 when there is none).
func loadSnapshot(ctx context.Context, path string, fn func(snapshotEntry)) (judged, from int64, err error) {
	db, judged, from, err := openSnapshot(ctx, path)
	if err != nil || db == nil {
		return 0, 0, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT entity, id, state, entered, updated, last_event, head, bloom FROM instances`)
	if err != nil {
		return 0, 0, fmt.Errorf("lifecycle snapshot %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e snapshotEntry
		var bloom int64
		if err := rows.Scan(&e.entity, &e.id, &e.state, &e.entered, &e.updated, &e.last, &e.head, &bloom); err != nil {
			return 0, 0, fmt.Errorf("lifecycle snapshot %s: %w", path, err)
		}
		e.bloom = uint64(bloom)
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("lifecycle snapshot %s: %w", path, err)
	}
	return judged, from, nil
}

// snapshotHead returns the latest log sequence of an instance the
// snapshot at path knew (0: none) and the sequence from which the log
// holds events it did not.
func snapshotHead(ctx context.Context, path, entity, id string) (head, from int64, err error) {
	db, _, from, err := openSnapshot(ctx, path)
	if err != nil || db == nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, `SELECT head FROM instances WHERE entity = ? AND id = ?`, entity, id).Scan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, from, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("lifecycle snapshot %s: %w", path, err)
	}
	return head, from, nil
}
