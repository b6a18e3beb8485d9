package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/statedb"
)

// ProcessedFile is the name of the processed-file list in Env.StateDir.
const ProcessedFile = "files-processed.db"

// observation is a file's size and modification time at a poll.
type observation struct {
	size int64
	mod  time.Time
}

// fetcher lists the directory and reads the files that are ready and not
// processed yet.
type fetcher struct {
	cfg *Config
	now func() time.Time

	// parseErrors counts the records that did not parse, for the status.
	parseErrors atomic.Int64

	mu       sync.Mutex
	db       *sql.DB
	seen     map[string]observation // name -> observation at the last poll
	sums     map[string]cachedSum   // name -> checksum of a known version
	inflight map[string]bool        // checksums read and not finished
}

type cachedSum struct {
	observation
	sum string
}

var _ poll.Fetcher = (*fetcher)(nil)

// open opens the processed-file list and forgets what the previous session
// had in flight.
func (f *fetcher) open(ctx context.Context, dir string) error {
	path, file := ":memory:", ""
	if dir != "" {
		path = filepath.Join(dir, ProcessedFile)
		file = path
	}
	db, err := statedb.Open(file, statedb.Options{})
	if err != nil {
		return fmt.Errorf("open processed-file list %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS processed (sum TEXT PRIMARY KEY, name TEXT NOT NULL, done_ns INTEGER NOT NULL) WITHOUT ROWID`); err != nil {
		db.Close()
		return fmt.Errorf("open processed-file list %s: %w", path, err)
	}
	f.mu.Lock()
	f.db = db
	f.seen, f.sums, f.inflight = map[string]observation{}, map[string]cachedSum{}, map[string]bool{}
	f.mu.Unlock()
	return nil
}

func (f *fetcher) close() error {
	f.mu.Lock()
	db := f.db
	f.db = nil
	f.mu.Unlock()
	if db == nil {
		return nil
	}
	return db.Close()
}

// candidate is a file that may be read.
type candidate struct {
	name string
	info fs.FileInfo
}

// Fetch reads every ready, unprocessed file, oldest first.
func (f *fetcher) Fetch(ctx context.Context, req poll.Request, emit func([]poll.Record) error) error {
	entries, err := os.ReadDir(f.cfg.Dir)
	if err != nil {
		return fmt.Errorf("list directory %s: %w", f.cfg.Dir, err)
	}
	var cands []candidate
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") {
			continue
		}
		if f.cfg.Ready == ReadyMarker && strings.HasSuffix(name, f.cfg.MarkerSuffix) {
			continue
		}
		if ok, _ := filepath.Match(f.cfg.Pattern, name); !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		cands = append(cands, candidate{name: name, info: info})
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i].info.ModTime(), cands[j].info.ModTime()
		if !a.Equal(b) {
			return a.Before(b)
		}
		return cands[i].name < cands[j].name
	})
	after := parseAfter(req.After)
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !f.ready(c) {
			continue
		}
		if err := f.file(ctx, c, after, emit); err != nil {
			return err
		}
	}
	return nil
}

// ready reports whether a file is complete.
func (f *fetcher) ready(c candidate) bool {
	path := filepath.Join(f.cfg.Dir, c.name)
	if f.cfg.Ready == ReadyMarker {
		_, err := os.Stat(path + f.cfg.MarkerSuffix)
		return err == nil
	}
	obs := observation{size: c.info.Size(), mod: c.info.ModTime()}
	f.mu.Lock()
	prev, ok := f.seen[c.name]
	f.seen[c.name] = obs
	f.mu.Unlock()
	return ok && prev == obs && f.now().Sub(obs.mod) >= f.cfg.StableFor
}

// afterPos is the last acknowledged record before the source opened.
type afterPos struct {
	F string `json:"f"`
	N int    `json:"n"`
}

func parseAfter(s string) afterPos {
	var a afterPos
	if s != "" {
		_ = json.Unmarshal([]byte(s), &a)
	}
	return a
}

// file reads one file unless it is in flight or processed.
func (f *fetcher) file(ctx context.Context, c candidate, after afterPos, emit func([]poll.Record) error) error {
	path := filepath.Join(f.cfg.Dir, c.name)
	sum, err := f.checksum(path, c)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	f.mu.Lock()
	busy := f.inflight[sum]
	db := f.db
	f.mu.Unlock()
	if busy || db == nil {
		return nil
	}
	var one int
	err = db.QueryRowContext(ctx, `SELECT 1 FROM processed WHERE sum = ?`, sum).Scan(&one)
	switch {
	case err == nil:
		// Processed, but not moved yet: a crash came between the two.
		return f.finish(ctx, c.name, sum)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("look up %s in the processed-file list: %w", c.name, err)
	}
	skip := 0
	if after.F == sum {
		skip = after.N
	}
	fh, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer fh.Close()
	f.mu.Lock()
	f.inflight[sum] = true
	f.mu.Unlock()
	var (
		page    []poll.Record
		held    *poll.Record
		emitted int
	)
	flush := func() error {
		if len(page) == 0 {
			return nil
		}
		emitted += len(page)
		err := emit(page)
		page = make([]poll.Record, 0, f.cfg.PageSize)
		return err
	}
	err = f.cfg.parse(fh, func(r record) error {
		if r.n <= skip {
			return nil
		}
		if r.err != nil {
			f.parseErrors.Add(1)
			switch f.cfg.ParseErrors {
			case ParseErrorsSkip:
				return nil
			case ParseErrorsFail:
				return core.Fatal(fmt.Errorf("%w: fix or remove the file and restart the connector, or set parse_errors to dead_letter", r.err))
			}
		}
		rec := f.record(c.name, path, sum, &r)
		if held != nil {
			page = append(page, *held)
			if len(page) >= f.cfg.PageSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		held = &rec
		return nil
	})
	if err != nil {
		f.forget(sum)
		return fmt.Errorf("read %s: %w", path, err)
	}
	if held == nil {
		// Empty, or every record was acknowledged before a restart.
		if err := flush(); err != nil {
			return err
		}
		f.forget(sum)
		return f.finish(ctx, c.name, sum)
	}
	name := c.name
	held.Done = func(ctx context.Context) error { return f.finish(ctx, name, sum) }
	page = append(page, *held)
	return flush()
}

func (f *fetcher) forget(sum string) {
	f.mu.Lock()
	delete(f.inflight, sum)
	f.mu.Unlock()
}

// record builds the poll record of r. A record that does not parse keeps
// its bytes, as the change's Raw and meta.raw, and with parse_errors:
// dead_letter is marked Invalid, for the rules to dead-letter.
func (f *fetcher) record(name, path, sum string, r *record) poll.Record {
	id := `{"f":"` + sum + `","n":` + strconv.Itoa(r.n) + `}`
	line := int64(r.line)
	meta := map[string]any{"file": name, "path": path, "line": line, "checksum": sum}
	key := map[string]any{"file": name, "line": line}
	if len(f.cfg.Key) > 0 && r.data != nil {
		key = make(map[string]any, len(f.cfg.Key))
		for _, k := range f.cfg.Key {
			key[k] = r.data[k]
		}
	}
	rec := poll.Record{
		ID:     id,
		Key:    key,
		Data:   r.data,
		Meta:   meta,
		Op:     core.OpCreate,
		Source: core.SourceInfo{System: "files", Endpoint: path},
	}
	if r.err != nil {
		rec.Raw = bytes.Clone(r.raw)
		meta["parse_error"] = r.err.Error()
		meta["raw"] = string(rec.Raw)
		if f.cfg.ParseErrors == ParseErrorsDeadLetter {
			rec.Invalid = fmt.Sprintf("file %s: %v", name, r.err)
		}
	}
	return rec
}

// checksum returns the SHA-256 (first 128 bits, hex) of a file, cached
// while its size and modification time stay the same.
func (f *fetcher) checksum(path string, c candidate) (string, error) {
	obs := observation{size: c.info.Size(), mod: c.info.ModTime()}
	f.mu.Lock()
	cs, ok := f.sums[c.name]
	f.mu.Unlock()
	if ok && cs.observation == obs {
		return cs.sum, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("checksum %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil)[:16])
	f.mu.Lock()
	f.sums[c.name] = cachedSum{observation: obs, sum: sum}
	f.mu.Unlock()
	return sum, nil
}

// finish records a file as processed, then moves or deletes it. Both steps
// are idempotent, so a crash between them is repaired by the next poll.
func (f *fetcher) finish(ctx context.Context, name, sum string) error {
	f.mu.Lock()
	db := f.db
	f.mu.Unlock()
	if db == nil {
		return poll.ErrClosed
	}
	if _, err := db.ExecContext(ctx, `INSERT OR IGNORE INTO processed (sum, name, done_ns) VALUES (?, ?, ?)`, sum, name, f.now().UnixNano()); err != nil {
		return fmt.Errorf("record %s as processed: %w", name, err)
	}
	path := filepath.Join(f.cfg.Dir, name)
	var marker string
	if f.cfg.Ready == ReadyMarker {
		marker = path + f.cfg.MarkerSuffix
	}
	switch f.cfg.After {
	case AfterMove:
		doneDir := f.cfg.doneDir()
		if err := os.MkdirAll(doneDir, 0o755); err != nil {
			return fmt.Errorf("create done directory %s: %w", doneDir, err)
		}
		dest := filepath.Join(doneDir, name)
		if _, err := os.Stat(dest); err == nil {
			dest += "." + sum[:12]
		}
		if err := os.Rename(path, dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("move %s to %s: %w", path, doneDir, err)
		}
		if marker != "" {
			if err := os.Rename(marker, dest+f.cfg.MarkerSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("move %s to %s: %w", marker, doneDir, err)
			}
		}
	case AfterDelete:
		for _, p := range []string{path, marker} {
			if p == "" {
				continue
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("delete %s: %w", p, err)
			}
		}
	}
	f.mu.Lock()
	delete(f.inflight, sum)
	delete(f.seen, name)
	delete(f.sums, name)
	f.mu.Unlock()
	return nil
}
