package mysql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// ErrUnknownTable is returned by Resnapshot for a table that is not
// captured or has no primary key.
var ErrUnknownTable = errors.New("not a captured table with a primary key")

// ErrSnapshotRunning is returned by Resnapshot while the initial snapshot
// or another on-demand snapshot runs.
var ErrSnapshotRunning = errors.New("a snapshot is running")

// resnapshots holds the on-demand snapshot in progress and the last one,
// shared by the admin handler, the binlog reader and Status.
type resnapshots struct {
	mu   sync.Mutex
	cur  *resnapshot
	last *resnapshot
}

// resnapshot is one on-demand snapshot of a table. The binlog reader
// drives it between transactions (see README.md): it reads a chunk,
// notes the keys the stream changes until it reaches the binlog place read
// after the chunk (the high watermark), then emits the chunk minus those
// keys.
type resnapshot struct {
	id    string
	table string

	// Reader goroutine only.
	after   []string        // last key read
	chunk   []core.Change   // read, waiting for the reader to reach high
	keys    []string        // the chunk's keys, normalized
	high    binlogPos       // the place after the chunk's query
	noted   map[string]bool // keys the stream changed since the chunk's read
	n       int             // chunks read
	lastOne bool            // the chunk pending is the table's last

	// Guarded by resnapshots.mu.
	state    string
	rows     int
	dropped  int
	started  time.Time
	finished time.Time
	err      string
}

func (rs *resnapshots) status() map[string]any {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s := rs.cur
	if s == nil {
		s = rs.last
	}
	if s == nil {
		return nil
	}
	out := map[string]any{"id": s.id, "table": s.table, "state": s.state, "rows": s.rows, "deduplicated": s.dropped, "started": s.started}
	if !s.finished.IsZero() {
		out["finished"] = s.finished
	}
	if s.err != "" {
		out["error"] = s.err
	}
	return out
}

func (rs *resnapshots) active() *resnapshot {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cur
}

func (rs *resnapshots) finish(s *resnapshot, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	s.finished = time.Now()
	s.state = "done"
	if err != nil {
		s.state, s.err = "failed", err.Error()
	}
	if rs.cur == s {
		rs.cur, rs.last = nil, s
	}
}

// Resnapshot starts an on-demand snapshot of table (database.table) and
// returns its id. It does not block: the binlog reader reads the table
// chunk by chunk between transactions and emits its rows as read changes
// in the stream's order.
func (s *Source) Resnapshot(table string) (string, error) {
	s.mu.Lock()
	rd, snap, rs := s.rd, s.snap, s.resnaps
	s.mu.Unlock()
	if rd == nil || rs == nil {
		return "", errors.New("the connector is not streaming")
	}
	if snap != nil {
		return "", fmt.Errorf("%w: the initial snapshot", ErrSnapshotRunning)
	}
	db, name, err := splitTable(table, s.dsn.db)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnknownTable, err)
	}
	k := tableKey(db, name)
	if !rd.captured[k] {
		return "", fmt.Errorf("table %s: %w", table, ErrUnknownTable)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cur != nil {
		return "", fmt.Errorf("%w: %s of %s", ErrSnapshotRunning, rs.cur.id, rs.cur.table)
	}
	rs.cur = &resnapshot{id: hex.EncodeToString(b), table: k, state: "running", started: time.Now()}
	return rs.cur.id, nil
}

// snapshotHandler serves POST /v1/connectors/<name>/snapshot with the
// body {"table":"database.table"} (see cdc.SnapshotHandler).
func (s *Source) snapshotHandler() http.Handler {
	return cdc.SnapshotHandler(cdc.SnapshotRequest{
		Example: "database.table",
		Start: func(table string) (string, string, error) {
			id, err := s.Resnapshot(table)
			return id, table, err
		},
		Unknown: ErrUnknownTable,
		Running: ErrSnapshotRunning,
	})
}

// keyText is the normalized form of a record's key, the same for a row
// read by a chunk and for a streamed change of it.
func keyText(t *table, rec map[string]any) string {
	if rec == nil {
		return ""
	}
	vals := make([]any, len(t.Key))
	for i, k := range t.Key {
		if j := t.colIndex(k); j >= 0 {
			vals[i] = rec[t.Columns[j].Name]
		}
	}
	b, _ := json.Marshal(vals)
	return string(b)
}

// resnapNote notes the keys a streamed change of the snapshotted table
// touches, while a chunk waits for its high watermark.
func (r *reader) resnapNote(k string, t *table, before, after map[string]any, truncate bool) {
	s := r.resnap
	if s == nil || s.table != k || s.chunk == nil {
		return
	}
	if truncate {
		s.noted = nil
		s.chunk, s.keys = []core.Change{}, nil
		return
	}
	if s.noted == nil {
		s.noted = map[string]bool{}
	}
	if before != nil {
		s.noted[keyText(t, before)] = true
	}
	if after != nil {
		s.noted[keyText(t, after)] = true
	}
}

// resnapStep advances the on-demand snapshot between transactions: emits
// the pending chunk once the reader reached its high watermark, and reads
// the next chunk, as long as it can go on without waiting for the stream.
func (r *reader) resnapStep() error {
	if r.resnaps == nil || r.inTxn {
		return nil
	}
	if r.resnap == nil {
		r.resnap = r.resnaps.active()
		if r.resnap == nil {
			return nil
		}
	}
	s := r.resnap
	for {
		if s.chunk != nil {
			if !s.high.atOrBefore(r.cur) {
				return nil // the stream has not reached the chunk's high watermark
			}
			if err := r.resnapEmit(s); err != nil {
				return err
			}
			if s.lastOne {
				r.resnaps.finish(s, nil)
				r.resnap = nil
				return nil
			}
		}
		if err := r.resnapRead(s); err != nil {
			r.resnaps.finish(s, err)
			r.resnap = nil
			r.log.Warn("on-demand snapshot failed", "table", s.table, "err", err)
			return nil
		}
	}
}

// resnapRead reads the next chunk of the table and the binlog place after
// it.
func (r *reader) resnapRead(s *resnapshot) error {
	t := r.sch[s.table]
	if t == nil || len(t.Key) == 0 {
		return fmt.Errorf("table %s: %w", s.table, ErrUnknownTable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect for the on-demand snapshot: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"); err != nil {
		return err
	}
	chs, keys, err := readChunk(ctx, conn, t, s.after, r.chunkSize)
	if err != nil {
		return err
	}
	high, err := currentPlace(ctx, conn, r.flavor)
	if err != nil {
		return fmt.Errorf("read the binlog position after a chunk: %w", err)
	}
	if high.gtid == nil && r.cur.gtid != nil || high.gtid != nil && r.cur.gtid == nil {
		return errors.New("the server's binlog positions changed kind")
	}
	s.n++
	s.chunk, s.high, s.noted, s.lastOne = chs, high, nil, len(chs) < r.chunkSize
	s.keys = make([]string, len(chs))
	for i, ch := range chs {
		s.keys[i] = keyText(t, ch.After)
	}
	if len(keys) > 0 {
		s.after = keys[len(keys)-1]
	}
	return nil
}

// resnapEmit emits the pending chunk's rows the stream did not change
// meanwhile, at positions of their own: "rs:<id>/<chunk>@<place>", which
// resume (like a heartbeat's) at the place.
func (r *reader) resnapEmit(s *resnapshot) error {
	commit := "rs:" + s.id + "/" + strconv.Itoa(s.n) + "@" + r.cur.String()
	emitted, dropped := 0, 0
	for i, ch := range s.chunk {
		if s.noted[s.keys[i]] {
			dropped++
			continue
		}
		ch.Position = cdc.StreamPosition(commit, emitted)
		emitted++
		if err := r.q.push(ch); err != nil {
			return err
		}
	}
	if emitted > 0 {
		r.lastOut = time.Now()
	}
	r.resnaps.mu.Lock()
	s.rows += emitted
	s.dropped += dropped
	r.resnaps.mu.Unlock()
	s.chunk, s.keys, s.noted = nil, nil, nil
	return nil
}

// stripResnap returns the place of a position's commit part written by
// resnapEmit, or s itself.
func stripResnap(s string) string {
	if strings.HasPrefix(s, "rs:") {
		if i := strings.IndexByte(s, '@'); i >= 0 {
			return s[i+1:]
		}
	}
	return s
}
