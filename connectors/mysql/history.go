package mysql

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// historyVersion is the format version of the schema history file.
const historyVersion = 1

// history is the durable schema history: the schema of the tracked
// databases at the start position, then after each DDL statement, each
// with the binlog place after which it holds. It lives in the connector's
// state directory (schema_history.json), written (to a temporary file,
// synced, renamed) before any change after the statement is emitted, so
// that every checkpoint finds the schema of its own time.
type history struct {
	path   string
	flavor string

	mu      sync.Mutex
	entries []historyEntry
}

type historyEntry struct {
	// After is the binlog place from which Tables hold: the start
	// position, or the place after the statement's transaction.
	After string `json:"after"`
	// DDL is the statement that led to Tables, empty for a snapshot of
	// the schema.
	DDL    string `json:"ddl,omitempty"`
	Tables schema `json:"tables"`
}

type historyFile struct {
	Version int            `json:"version"`
	Flavor  string         `json:"flavor"`
	Entries []historyEntry `json:"entries"`
}

// openHistory reads the history in dir, or returns an empty one.
func openHistory(dir, flavor string) (*history, error) {
	h := &history{path: filepath.Join(dir, "schema_history.json"), flavor: flavor}
	b, err := os.ReadFile(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read schema history %s: %w", h.path, err)
	}
	var f historyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read schema history %s: %w: remove the file and the checkpoint to start over with a new snapshot", h.path, err)
	}
	if f.Version != historyVersion {
		return nil, fmt.Errorf("schema history %s: format version %d, want %d", h.path, f.Version, historyVersion)
	}
	if f.Flavor != "" && f.Flavor != flavor {
		return nil, fmt.Errorf("schema history %s was written for a %s server, and the server is %s: remove it and the checkpoint to start over", h.path, f.Flavor, flavor)
	}
	h.entries = f.Entries
	return h, nil
}

// at returns the schema that holds at place p: the last entry recorded at
// or before p, and whether there is one.
func (h *history) at(p binlogPos) (schema, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.entries) - 1; i >= 0; i-- {
		ep, err := parsePos(h.flavor, h.entries[i].After)
		if err == nil && ep.atOrBefore(p) {
			return h.entries[i].Tables, true
		}
	}
	return nil, false
}

// record stores s as the schema from place after on, unless an entry for
// that place exists (a statement read again after a restart); the file is
// durable when it returns.
func (h *history) record(after binlogPos, ddl string, s schema) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := after.String()
	for i := len(h.entries) - 1; i >= 0; i-- {
		if h.entries[i].After == a {
			return nil
		}
	}
	h.entries = append(h.entries, historyEntry{After: a, DDL: ddl, Tables: s})
	return h.save()
}

// prune drops the entries no checkpoint at or after p needs: all but the
// last one at or before p.
func (h *history) prune(p binlogPos) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	last := -1
	for i, e := range h.entries {
		ep, err := parsePos(h.flavor, e.After)
		if err == nil && ep.atOrBefore(p) {
			last = i
		}
	}
	if last <= 0 {
		return nil
	}
	h.entries = h.entries[last:]
	return h.save()
}

func (h *history) save() error {
	b, err := json.Marshal(historyFile{Version: historyVersion, Flavor: h.flavor, Entries: h.entries})
	if err != nil {
		return err
	}
	tmp := h.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write schema history: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write schema history %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync schema history %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("write schema history %s: %w", h.path, err)
	}
	if d, err := os.Open(filepath.Dir(h.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
