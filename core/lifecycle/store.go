package lifecycle

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/core/statedb"
)

// StoreFile is the name of the tracker's database in its directory.
const StoreFile = "lifecycle.db"

// storeFormat is the layout of the store: 2 is the log of events (1 had
// a table of instances and a timeline clustered by instance).
const storeFormat = "2"

// ErrNotFound is returned by Trace for an instance the store does not hold.
var ErrNotFound = errors.New("no such instance")

// Store keeps the tracker's durable state in SQLite: a log of every event
// the tracker took, in arrival order (its sequence is the primary key, so
// a batch appends to the last pages of the file), each row linked to the
// instance's event before (prev) so that an instance's timeline is a walk
// down its chain, and updated with its verdict, the judging order and the
// state it left the instance in once judged; and the instances reported
// stuck. The tracker keeps every instance's current state in memory and
// rebuilds it from the snapshot (see SnapshotFile) and the log after it.
// A Store is safe for concurrent use; one process writes.
type Store struct {
	db   *sql.DB
	path string
	// insert appends insertRows rows to the log, insertOne one; judge
	// and judgeOne do the same with verdicts; row reads a row and its
	// verdict.
	insert, insertOne, judge, judgeOne, row *sql.Stmt
	// names are the state names and verdicts the verdicts table codes
	// (code 0 is ""), and codes the reverse. namesMu guards both: the
	// tracker records names while queries (Trace) read them.
	namesMu sync.RWMutex
	names   []string
	codes   map[string]int64
}

// The log's rows hold the event in one blob (see encodeRecord): binding
// one value costs a fraction of binding eight, and nothing searches the
// log by its fields. A verdict is a row of its own, appended when the
// event is judged (an insert near the end of its table costs less than
// updating the event's row), its verdict and state as codes of names.
const schema = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY, prev INTEGER NOT NULL, rec BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts(seq INTEGER PRIMARY KEY, judged INTEGER NOT NULL, verdict INTEGER NOT NULL, state INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names(code INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS stuck(entity TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY(entity, id)) WITHOUT ROWID;
`

// insertRows is how many rows one INSERT statement appends.
const insertRows = 32

// OpenStore opens (creating when missing) the store at path; "" opens one
// in memory. cacheKiB bounds SQLite's page cache (0: its default). A
// store of the first format (with a table of instances) is emptied: its
// generation is dropped with it, so the tracker reads the stream again.
func OpenStore(ctx context.Context, path string, cacheKiB int) (*Store, error) {
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
		}
	}
	db, err := statedb.Open(path, statedb.Options{Sync: statedb.SyncNormal, CacheKiB: cacheKiB, TxLock: "immediate"})
	if err != nil {
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	s := &Store{db: db, path: path}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	var old int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'instances'`).Scan(&old); err != nil {
		return err
	}
	if old > 0 {
		if _, err := s.db.ExecContext(ctx, `DROP TABLE IF EXISTS instances; DROP TABLE IF EXISTS timeline; DROP TABLE IF EXISTS held; DELETE FROM meta`); err != nil {
			return fmt.Errorf("drop the tables of the first format: %w", err)
		}
	}
	if _, err := s.db.ExecContext(ctx, schema+`INSERT INTO meta(key, value) VALUES('format', '`+storeFormat+`') ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("create tables: %w", err)
	}
	var err error
	if s.insert, err = s.db.PrepareContext(ctx, `INSERT INTO log(seq, prev, rec) VALUES `+strings.TrimSuffix(strings.Repeat("(?,?,?),", insertRows), ",")); err != nil {
		return err
	}
	if s.insertOne, err = s.db.PrepareContext(ctx, `INSERT INTO log(seq, prev, rec) VALUES (?,?,?)`); err != nil {
		return err
	}
	if s.judge, err = s.db.PrepareContext(ctx, `INSERT OR REPLACE INTO verdicts(seq, judged, verdict, state) VALUES `+strings.TrimSuffix(strings.Repeat("(?,?,?,?),", insertRows), ",")); err != nil {
		return err
	}
	if s.judgeOne, err = s.db.PrepareContext(ctx, `INSERT OR REPLACE INTO verdicts(seq, judged, verdict, state) VALUES (?,?,?,?)`); err != nil {
		return err
	}
	return s.prepareReads(ctx)
}

const selectRow = `SELECT l.prev, l.rec, v.judged, v.verdict, v.state FROM log l LEFT JOIN verdicts v ON v.seq = l.seq WHERE l.seq = ?`

// prepareReads loads the names and prepares the statement reading rows.
func (s *Store) prepareReads(ctx context.Context) error {
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	s.names, s.codes = []string{""}, map[string]int64{"": 0}
	rows, err := s.db.QueryContext(ctx, `SELECT code, name FROM names ORDER BY code`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c int64
		var n string
		if err := rows.Scan(&c, &n); err != nil {
			return err
		}
		for int64(len(s.names)) <= c {
			s.names = append(s.names, "")
		}
		s.names[c], s.codes[n] = n, c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.row, err = s.db.PrepareContext(ctx, selectRow)
	return err
}

// name returns the name of code ("" for one it does not know).
func (s *Store) name(code int64) string {
	s.namesMu.RLock()
	defer s.namesMu.RUnlock()
	if code < 0 || code >= int64(len(s.names)) {
		return ""
	}
	return s.names[code]
}

// nameCount returns how many names are recorded (see forgetNames).
func (s *Store) nameCount() int {
	s.namesMu.RLock()
	defer s.namesMu.RUnlock()
	return len(s.names)
}

// forgetNames forgets the names from the n-th on, recorded by a
// transaction that was rolled back.
func (s *Store) forgetNames(n int) {
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	for _, name := range s.names[n:] {
		delete(s.codes, name)
	}
	s.names = s.names[:n]
}

// code returns the code of name, recording a new one in tx (the caller
// calls forgetNames if tx is rolled back).
func (s *Store) code(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	s.namesMu.Lock()
	defer s.namesMu.Unlock()
	if c, ok := s.codes[name]; ok {
		return c, nil
	}
	c := int64(len(s.names))
	if _, err := tx.ExecContext(ctx, `INSERT INTO names(code, name) VALUES(?, ?)`, c, name); err != nil {
		return 0, err
	}
	s.names, s.codes[name] = append(s.names, name), c
	return c, nil
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
	s := &Store{db: db, path: path}
	if err := s.prepareReads(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("lifecycle store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error {
	for _, st := range []*sql.Stmt{s.insert, s.insertOne, s.judge, s.judgeOne, s.row} {
		if st != nil {
			st.Close()
		}
	}
	return s.db.Close()
}

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
// when its database exists in the current format, else a new random one,
// which the tracker writes into the database when it opens. It only reads.
func Generation(dir string) (string, error) {
	path := filepath.Join(dir, StoreFile)
	if _, err := os.Stat(path); err == nil {
		st, err := OpenStoreReadOnly(context.Background(), path)
		if err == nil {
			defer st.Close()
			var g, f string
			if err := st.db.QueryRow(`SELECT (SELECT value FROM meta WHERE key = 'generation'), (SELECT value FROM meta WHERE key = 'format')`).Scan(&g, &f); err == nil && f == storeFormat {
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

// RemoveStore removes the store in dir (its database, log files and
// snapshot) and reports whether there was one.
func RemoveStore(dir string) (bool, error) {
	path := filepath.Join(dir, StoreFile)
	snap := filepath.Join(dir, SnapshotFile)
	removed := false
	for _, f := range []string{path, path + "-wal", path + "-shm", snap, snap + ".tmp"} {
		err := os.Remove(f)
		switch {
		case err == nil:
			removed = true
		case !errors.Is(err, os.ErrNotExist):
			return removed, fmt.Errorf("remove lifecycle store: %w", err)
		}
	}
	return removed, nil
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

// logRow is one row of the log, with its verdict.
type logRow struct {
	seq, prev, time, judged, arrived int64
	entity, id                       string
	eventID, typ, source             string
	position                         string
	verdict, state                   string // "" while pending
}

// encodeRecord appends r's event to b: its fields but seq, prev and the
// verdict.
func encodeRecord(b []byte, r *logRow) []byte {
	for _, s := range []string{r.entity, r.id, r.eventID, r.typ, r.source, r.position} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, r.time)
	return binary.AppendVarint(b, r.arrived)
}

var errBadRecord = errors.New("malformed log record")

// recordPrefix returns how the records of the instance id of entity
// start.
func recordPrefix(entity, id string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(entity)))
	b = append(b, entity...)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...)
}

// decodeRecord sets r's event from b.
func decodeRecord(b []byte, r *logRow) error {
	for _, s := range []*string{&r.entity, &r.id, &r.eventID, &r.typ, &r.source, &r.position} {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return errBadRecord
		}
		*s = string(b[k : k+int(n)])
		b = b[k+int(n):]
	}
	var k int
	if r.time, k = binary.Varint(b); k <= 0 {
		return errBadRecord
	}
	if r.arrived, k = binary.Varint(b[k:]); k <= 0 {
		return errBadRecord
	}
	return nil
}

// scanRow reads a row of selectRow's columns.
func (s *Store) scanRow(sc interface{ Scan(...any) error }, r *logRow) error {
	var rec []byte
	var judged, verdict, state sql.NullInt64
	if err := sc.Scan(&r.prev, &rec, &judged, &verdict, &state); err != nil {
		return err
	}
	if err := decodeRecord(rec, r); err != nil {
		return fmt.Errorf("log row %d: %w", r.seq, err)
	}
	r.judged, r.verdict, r.state = judged.Int64, s.name(verdict.Int64), s.name(state.Int64)
	return nil
}

// chain returns the log rows of an instance, latest first, walking from
// head down the links between them; stopAt, when it returns true, ends
// the walk early (with the row it was given included).
func (s *Store) chain(ctx context.Context, head int64, stopAt func(logRow) bool) ([]logRow, error) {
	var out []logRow
	for seq := head; seq > 0; {
		r := logRow{seq: seq}
		err := s.scanRow(s.row.QueryRowContext(ctx, seq), &r)
		if errors.Is(err, sql.ErrNoRows) {
			break // pruned
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
		if stopAt != nil && stopAt(r) {
			break
		}
		seq = r.prev
	}
	return out, nil
}

// timeline turns an instance's log rows into its timeline, in event-time
// order.
func timeline(rows []logRow) []Step {
	out := make([]Step, 0, len(rows))
	for _, r := range rows {
		v := r.verdict
		if r.judged == 0 {
			v = "pending"
		}
		out = append(out, Step{EventID: r.eventID, Type: r.typ, Source: r.source, Time: time.Unix(0, r.time).UTC(), Position: r.position, Verdict: v})
	}
	slices.SortStableFunc(out, func(a, b Step) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
	return out
}

// Trace returns the instance id of entity with its timeline, or an error
// wrapping ErrNotFound, from the files alone (the running tracker answers
// from memory): the snapshot gives the latest event of the instance it
// knew, the log after it any later one, and the instance's state is that
// its judged events, in the order they were judged, left it in.
func (s *Store) Trace(ctx context.Context, entity, id string) (*Instance, error) {
	head, from := snapshotHead(filepath.Join(filepath.Dir(s.path), SnapshotFile), entity, id)
	// The log after the snapshot, matched in SQLite on the start of its
	// records: the instance's entity and id.
	prefix := recordPrefix(entity, id)
	var later sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM log WHERE seq >= ? AND substr(rec, 1, ?) = ?`, from, len(prefix), prefix).Scan(&later); err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	head = max(head, later.Int64)
	rows, err := s.chain(ctx, head, nil)
	if err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s %q: %w", entity, id, ErrNotFound)
	}
	in := &Instance{Entity: entity, ID: id, Timeline: timeline(rows)}
	judged := slices.DeleteFunc(slices.Clone(rows), func(r logRow) bool { return r.judged == 0 })
	slices.SortFunc(judged, func(a, b logRow) int { return cmpInt(a.judged, b.judged) })
	for _, r := range judged {
		if in.State == "" || r.state != in.State {
			in.State, in.EnteredAt, in.LastEventID = r.state, time.Unix(0, r.time).UTC(), r.eventID
		}
		in.UpdatedAt = time.Unix(0, r.judged).UTC()
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM stuck WHERE entity = ? AND id = ?`, entity, id).Scan(&n); err != nil {
		return nil, fmt.Errorf("trace %s %s: %w", entity, id, err)
	}
	in.Stuck = n > 0 && in.State != ""
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
