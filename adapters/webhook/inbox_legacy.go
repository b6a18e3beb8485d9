package webhook

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tributary/tributary/core/statedb"
)

// legacyInbox is the SQLite database earlier versions kept the inbox in.
const legacyInbox = "webhook-inbox.db"

// migrateLegacy moves an earlier version's SQLite inbox in stateDir to the
// log in dir: its deliveries not acknowledged (with their sequences) and
// the delivery ids it remembers. The log is built aside and renamed into
// place, then the database is deleted, so a crash at any step either
// migrates again or finds the migration done.
func migrateLegacy(ctx context.Context, stateDir, dir string, now func() time.Time) error {
	dbPath := filepath.Join(stateDir, legacyInbox)
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return removeLegacy(dbPath)
	}
	tmp := dir + ".migrating"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	if err := writeMigrated(ctx, dbPath, tmp, now); err != nil {
		return fmt.Errorf("migrate %s: %w", dbPath, err)
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	if err := syncDir(stateDir); err != nil {
		return err
	}
	return removeLegacy(dbPath)
}

func removeLegacy(dbPath string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeMigrated writes the log of the database at dbPath into dir.
func writeMigrated(ctx context.Context, dbPath, dir string, now func() time.Time) error {
	db, err := statedb.Open(dbPath, statedb.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	var (
		acked    uint64
		gen      int
		genStart int64
	)
	err = db.QueryRowContext(ctx, `SELECT acked_seq, gen, gen_start_ns FROM inbox_state WHERE id = 0`).Scan(&acked, &gen, &genStart)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		genStart = now().UnixNano()
	case err != nil:
		return err
	}
	// The current generation's ids keep its start; the other's are placed
	// just before it, so they are forgotten at the next rotation, as the
	// database would have.
	seen, start := beginFrame(nil, frameSeenGen)
	seen = binary.AppendVarint(seen, genStart)
	seen = endFrame(seen, start)
	seen, start = beginFrame(seen, frameSeenIDs)
	for g := range 2 {
		t := genStart
		if g != gen&1 {
			t--
		}
		rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT delivery_id FROM seen_%d`, g))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			seen = appendSeenID(seen, t, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	seen = endFrame(seen, start)
	if err := writeFileSync(seenPath(dir, time.Unix(0, genStart)), seen); err != nil {
		return err
	}

	next := acked
	var seg []byte
	rows, err := db.QueryContext(ctx, `SELECT first_seq, last_seq, data FROM inbox_batches WHERE last_seq > ? ORDER BY first_seq`, int64(acked))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			first, last int64
			data        []byte
		)
		if err := rows.Scan(&first, &last, &data); err != nil {
			return err
		}
		recs, err := decodeLegacyBatch(uint64(first), data)
		if err != nil {
			return fmt.Errorf("decode stored batch at sequence %d: %w", first, err)
		}
		for _, r := range recs {
			next = max(next, r.seq)
			if r.seq <= acked {
				continue
			}
			r.head = appendRecordHead(nil, r)
			seg = appendDelivery(seg, r)
		}
		next = max(next, uint64(last))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return writeFileSync(segmentPath(dir, 1), append(appendState(nil, acked, next), seg...))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// legacyMeta is the request meta as the database stored it, in JSON.
type legacyMeta struct {
	Method      string            `json:"method"`
	Path        string            `json:"path"`
	RemoteAddr  string            `json:"remote_addr,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Query       map[string]string `json:"query,omitempty"`
	PathParams  map[string]string `json:"path_params,omitempty"`
}

// decodeLegacyBatch reads the records of a database batch blob: per
// record, uvarint-framed id, varint time, uvarint-framed JSON meta and
// uvarint-framed body; the first has sequence first and the others follow.
func decodeLegacyBatch(first uint64, data []byte) ([]*record, error) {
	var out []*record
	d := decoder{b: data}
	for seq := first; len(d.b) > 0; seq++ {
		id := d.str()
		ns := d.varint()
		meta := d.bytes()
		body := d.bytes()
		if d.err != nil {
			return nil, d.err
		}
		var m legacyMeta
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, fmt.Errorf("delivery %q: %w", id, err)
		}
		out = append(out, &record{seq: seq, id: id, received: time.Unix(0, ns).UTC(), body: body, meta: recordMeta{
			Method: m.Method, Path: m.Path, RemoteAddr: m.RemoteAddr, ContentType: m.ContentType,
			Headers: anyMap(m.Headers), Query: anyMap(m.Query), PathParams: anyMap(m.PathParams),
		}})
	}
	return out, nil
}

func anyMap(m map[string]string) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
