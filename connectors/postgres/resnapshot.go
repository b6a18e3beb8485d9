package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/adapters/cdc"
)

// WatermarkPrefix is the prefix of the transactional logical decoding
// messages that mark the low and high watermarks of an on-demand snapshot
// chunk. Their content is "<slot>/<snapshot id>/<chunk>/low|high".
const WatermarkPrefix = "tributary_watermark"

// resnapshots holds the on-demand snapshot in progress and the last one,
// shared by the admin handler, the snapshot worker, the receiver and
// Status.
type resnapshots struct {
	mu   sync.Mutex
	cur  *resnapshot
	last *resnapshot
}

// resnapshot is one on-demand snapshot of a table.
type resnapshot struct {
	id   string
	meta *tableMeta

	// Guarded by resnapshots.mu.
	chunks   map[int]*resnapChunk
	state    string
	done     int
	rows     int
	dropped  int
	started  time.Time
	finished time.Time
	err      string
}

// resnapChunk is a chunk read between its watermarks, waiting for the
// receiver to reach its high watermark.
type resnapChunk struct {
	rows []chunkRow
	last bool
	// done is closed by the receiver once the chunk is emitted.
	done             chan struct{}
	emitted, dropped int
}

// current returns the snapshot in progress with the id, if any.
func (rs *resnapshots) current(id string) *resnapshot {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cur == nil || rs.cur.id != id {
		return nil
	}
	return rs.cur
}

// take removes and returns chunk n of the snapshot.
func (rs *resnapshots) take(s *resnapshot, n int) *resnapChunk {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	c := s.chunks[n]
	delete(s.chunks, n)
	return c
}

// status returns the progress of the snapshot in progress, else of the
// last one; nil when there was none.
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
	st := map[string]any{
		"id": s.id, "table": s.meta.qualified(), "state": s.state, "chunks": s.done,
		"rows": s.rows, "deduplicated": s.dropped, "started": s.started.UTC().Format(time.RFC3339Nano),
	}
	if !s.finished.IsZero() {
		st["finished"] = s.finished.UTC().Format(time.RFC3339Nano)
	}
	if s.err != "" {
		st["error"] = s.err
	}
	return st
}

// window collects the keys of one table changed by the stream since the
// last high watermark (or the first low watermark) of an on-demand
// snapshot. A nil window covers nothing.
type window struct {
	id            string
	schema, table string
	keys          map[string]struct{}
	truncated     bool
}

func (w *window) covers(rel *relation) bool {
	return w != nil && rel.table == w.table && rel.schema == w.schema
}

// note records the key of a tuple (nil, a whole row or a key-only old row).
func (w *window) note(rel *relation, t *pglogrepl.TupleData) {
	if t == nil || len(rel.keyIdx) == 0 {
		return
	}
	var b strings.Builder
	for n, i := range rel.keyIdx {
		if n > 0 {
			b.WriteByte(0)
		}
		if i < len(t.Columns) {
			b.Write(t.Columns[i].Data)
		}
	}
	w.keys[b.String()] = struct{}{}
}

func keyString(kt []string) string { return strings.Join(kt, "\x00") }

// watermark handles a watermark message of the transaction being decoded.
// A low watermark opens the window; a high watermark emits its chunk,
// without the rows whose keys the stream changed in the window, as
// changes of the watermark's transaction, and restarts the window.
func (r *receiver) watermark(content string) {
	parts := strings.Split(content, "/")
	if len(parts) != 4 || parts[0] != r.cfg.Slot || r.resnaps == nil {
		return
	}
	s := r.resnaps.current(parts[1])
	if s == nil {
		return // another run's or another connector's
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		return
	}
	switch parts[3] {
	case "low":
		if r.win == nil || r.win.id != s.id {
			r.win = &window{id: s.id, schema: s.meta.schema, table: s.meta.name, keys: map[string]struct{}{}}
		}
	case "high":
		c := r.resnaps.take(s, n)
		if c == nil || r.win == nil || r.win.id != s.id {
			return
		}
		for _, row := range c.rows {
			if _, changed := r.win.keys[keyString(row.keyText)]; changed || r.win.truncated {
				c.dropped++
				continue
			}
			key, skip := r.next()
			if skip {
				continue
			}
			r.append(key, row.change(s.meta))
			c.emitted++
		}
		if c.last {
			r.win = nil
		} else {
			r.win.keys, r.win.truncated = map[string]struct{}{}, false
		}
		c.rows = nil
		close(c.done)
	}
}

// Errors of Resnapshot, which the admin endpoint answers with 400 and 409.
var (
	ErrUnknownTable     = errors.New("table not captured")
	ErrSnapshotRunning  = errors.New("a snapshot is in progress")
	errResnapshotClosed = errors.New("source is not streaming")
)

// Resnapshot starts an on-demand snapshot of one captured table (schema.table,
// or table for public) while streaming goes on, and returns its id. The
// table is read in key-ordered chunks between watermarks and deduplicated
// against the stream; see README.md. It fails with ErrUnknownTable for a
// table that is not captured or has no primary key, and ErrSnapshotRunning
// while a snapshot (initial or on-demand) is in progress.
func (s *Source) Resnapshot(table string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recv == nil || s.closed {
		return "", errResnapshotClosed
	}
	name := qualified(table)
	meta := s.metas[name]
	switch {
	case meta == nil || name == qualified(s.cfg.Outbox.Table) && s.cfg.Outbox.Table != "":
		return "", fmt.Errorf("snapshot of %s: %w: name one of the tables of publication %q (schema.table)", table, ErrUnknownTable, s.cfg.Publication)
	case len(meta.key) == 0:
		return "", fmt.Errorf("snapshot of %s: %w with a primary key, which chunks and deduplication need: add a primary key", table, ErrUnknownTable)
	case s.snap != nil:
		return "", fmt.Errorf("snapshot of %s: %w (the initial snapshot): retry once it is done", table, ErrSnapshotRunning)
	}
	rs := s.resnaps
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cur != nil {
		return "", fmt.Errorf("snapshot of %s: %w (of %s): retry once it is done", table, ErrSnapshotRunning, rs.cur.meta.qualified())
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	snap := &resnapshot{id: hex.EncodeToString(b[:]), meta: meta, chunks: map[int]*resnapChunk{}, state: "running", started: time.Now()}
	rs.cur = snap
	pool, r, ctx := s.pool, s.recv, s.bgctx
	s.bg.Go(func() { s.runResnapshot(ctx, pool, r, snap) })
	s.log.Info("on-demand snapshot started", "table", name, "id", snap.id)
	return snap.id, nil
}

// runResnapshot reads the table chunk by chunk: for each chunk a low
// watermark, the keyset query, then a high watermark, and waits for the
// receiver to emit the chunk before the next.
func (s *Source) runResnapshot(ctx context.Context, pool *pgxpool.Pool, r *receiver, snap *resnapshot) {
	ts := s.newTypes()
	err := func() error {
		var after []string
		for n := 0; ; n++ {
			if err := emitWatermark(ctx, pool, s.cfg.Slot, snap.id, n, "low"); err != nil {
				return err
			}
			rows, err := readChunk(ctx, pool, ts, snap.meta, after, s.cfg.Snapshot.ChunkSize)
			if err != nil {
				return err
			}
			c := &resnapChunk{rows: rows, last: len(rows) < s.cfg.Snapshot.ChunkSize, done: make(chan struct{})}
			if len(rows) > 0 {
				after = rows[len(rows)-1].keyText
			}
			s.resnaps.mu.Lock()
			snap.chunks[n] = c
			s.resnaps.mu.Unlock()
			if err := emitWatermark(ctx, pool, s.cfg.Slot, snap.id, n, "high"); err != nil {
				return err
			}
			select {
			case <-c.done:
			case <-r.done:
				return errors.New("the replication stream stopped")
			case <-ctx.Done():
				return errResnapshotClosed
			}
			s.resnaps.mu.Lock()
			snap.done++
			snap.rows += c.emitted
			snap.dropped += c.dropped
			s.resnaps.mu.Unlock()
			if c.last {
				return nil
			}
		}
	}()
	s.resnaps.mu.Lock()
	snap.state, snap.finished, snap.chunks = "done", time.Now(), nil
	if err != nil {
		snap.state, snap.err = "failed", err.Error()
	}
	s.resnaps.cur, s.resnaps.last = nil, snap
	s.resnaps.mu.Unlock()
	if err != nil {
		s.log.Warn("on-demand snapshot failed; request it again", "table", snap.meta.qualified(), "id", snap.id, "err", err)
		return
	}
	s.log.Info("on-demand snapshot done", "table", snap.meta.qualified(), "id", snap.id, "rows", snap.rows, "deduplicated", snap.dropped)
}

// emitWatermark writes a watermark in a transaction of its own, so that
// its commit flushes it to the slot.
func emitWatermark(ctx context.Context, pool *pgxpool.Pool, slot, id string, n int, kind string) error {
	content := fmt.Sprintf("%s/%s/%d/%s", slot, id, n, kind)
	if _, err := pool.Exec(ctx, `select pg_logical_emit_message(true, $1, $2)`, WatermarkPrefix, content); err != nil {
		return fmt.Errorf("write %s watermark of snapshot chunk %d: %w", kind, n, err)
	}
	return nil
}

// snapshotHandler serves POST /v1/connectors/<name>/snapshot with the
// body {"table":"schema.table"} (see cdc.SnapshotHandler).
func (s *Source) snapshotHandler() http.Handler {
	return cdc.SnapshotHandler(cdc.SnapshotRequest{
		Example: "schema.table",
		Start: func(table string) (string, string, error) {
			id, err := s.Resnapshot(table)
			return id, qualified(table), err
		},
		Unknown: ErrUnknownTable,
		Running: ErrSnapshotRunning,
	})
}
