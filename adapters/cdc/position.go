package cdc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tributary/tributary/core"
)

// PositionVersion is the version of the position format described in the
// package documentation.
const PositionVersion = 1

// Position is a decoded CDC position: either a place in the change log
// (Commit and Index) or a place in a snapshot (Snapshot set).
type Position struct {
	// Commit is the log position of the transaction's commit, in the
	// database's own text form (an LSN such as "0/16B3748").
	Commit string `json:"lsn,omitempty"`
	// Index is the change's index within its transaction, from 0.
	Index int `json:"i,omitempty"`
	// Snapshot is set for changes read by a snapshot.
	Snapshot *SnapshotPosition `json:"-"`
}

// SnapshotPosition is a change's place in a snapshot, and how far the
// snapshot got by the time the change was handed out: enough to resume
// every table after a crash.
//
// Tables are started in name order (see Plan). A position written by a
// snapshot that reads one table at a time has neither Started nor Others:
// every table before Table is done and Table is done up to Key. A snapshot
// that reads tables in parallel hands out their chunks interleaved, so its
// positions also name the greatest table started (Started) and the other
// tables started but not finished (Others); every other table up to
// Started is done.
type SnapshotPosition struct {
	// At is the log position the snapshot is consistent with: streaming
	// starts there once the snapshot is done.
	At string `json:"snap"`
	// Table is the qualified name of the change's table.
	Table string `json:"t"`
	// Key is the text form of the row's key columns, in key order.
	Key []string `json:"k"`
	// Started, when set, is the greatest table name started: tables after
	// it in name order are not started. Empty means Table.
	Started string `json:"hi,omitempty"`
	// Others are the tables other than Table started and not finished, by
	// qualified name, each with the text form of its last key handed out
	// before or with this change (nil when none was).
	Others map[string][]string `json:"p,omitempty"`
}

// StartedThrough returns the greatest table name started: Started, or
// Table when Started is empty.
func (sp *SnapshotPosition) StartedThrough() string {
	return max(sp.Started, sp.Table)
}

// IsSnapshot reports whether p names a change read by a snapshot.
func (p Position) IsSnapshot() bool { return p.Snapshot != nil }

// Encode returns p as a core.Position.
func (p Position) Encode() core.Position {
	if p.Snapshot != nil {
		return NewChunkEncoder(*p.Snapshot).Encode(p.Snapshot.Key)
	}
	return StreamPosition(p.Commit, p.Index)
}

// StreamPosition returns the position of the change at index within the
// transaction committed at commit. It is the hot path of streaming, so it
// writes the JSON by hand; commit must need no JSON escaping (LSNs, GTIDs
// and binlog coordinates don't).
func StreamPosition(commit string, index int) core.Position {
	return AppendStreamPosition(make([]byte, 0, 16+len(commit)+8), commit, index)
}

// AppendStreamPosition returns StreamPosition(commit, index) with its data
// appended to dst (its capacity capped at its length), so that a reader
// making many positions can take their bytes from one buffer.
func AppendStreamPosition(dst []byte, commit string, index int) core.Position {
	b := append(dst, `{"lsn":"`...)
	b = append(b, commit...)
	b = append(b, `","i":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, '}')
	b = b[len(dst):len(b):len(b)]
	return core.Position{Version: PositionVersion, Data: b}
}

// ErrBadPosition is wrapped by errors of positions that cannot be read.
var ErrBadPosition = errors.New("not a CDC position")

// DecodePosition reads a position written by Encode.
func DecodePosition(pos core.Position) (Position, error) {
	if pos.Version != PositionVersion {
		return Position{}, fmt.Errorf("position %s: version %d, want %d: %w", pos, pos.Version, PositionVersion, ErrBadPosition)
	}
	var raw struct {
		Commit  *string             `json:"lsn"`
		Index   int                 `json:"i"`
		At      *string             `json:"snap"`
		Table   string              `json:"t"`
		Key     []string            `json:"k"`
		Started string              `json:"hi"`
		Others  map[string][]string `json:"p"`
	}
	if err := json.Unmarshal(pos.Data, &raw); err != nil {
		return Position{}, fmt.Errorf("position %s: %w: %w", pos, ErrBadPosition, err)
	}
	switch {
	case raw.At != nil:
		if raw.Table == "" {
			return Position{}, fmt.Errorf("position %s: snapshot position without a table: %w", pos, ErrBadPosition)
		}
		if raw.Started != "" && raw.Started < raw.Table {
			return Position{}, fmt.Errorf("position %s: snapshot started through %q, before its own table: %w", pos, raw.Started, ErrBadPosition)
		}
		return Position{Snapshot: &SnapshotPosition{At: *raw.At, Table: raw.Table, Key: raw.Key, Started: raw.Started, Others: raw.Others}}, nil
	case raw.Commit != nil:
		if raw.Index < 0 {
			return Position{}, fmt.Errorf("position %s: negative index: %w", pos, ErrBadPosition)
		}
		return Position{Commit: *raw.Commit, Index: raw.Index}, nil
	}
	return Position{}, fmt.Errorf("position %s: neither a log nor a snapshot position: %w", pos, ErrBadPosition)
}

// ChunkEncoder encodes the positions of the changes of one snapshot chunk,
// which share At, Table, Started and Others and differ only in Key. The
// shared parts are encoded once, so a change costs only its key. Its
// positions are byte for byte those of Position.Encode.
type ChunkEncoder struct {
	prefix, suffix []byte
}

// NewChunkEncoder returns the encoder of the chunk whose changes are sp
// with their own keys; sp.Key is ignored.
func NewChunkEncoder(sp SnapshotPosition) ChunkEncoder {
	var e ChunkEncoder
	e.prefix = append(e.prefix, `{"snap":`...)
	e.prefix = core.AppendJSONString(e.prefix, sp.At, true)
	e.prefix = append(e.prefix, `,"t":`...)
	e.prefix = core.AppendJSONString(e.prefix, sp.Table, true)
	e.prefix = append(e.prefix, `,"k":`...)
	rest, _ := json.Marshal(struct { // strings only: cannot fail
		Started string              `json:"hi,omitempty"`
		Others  map[string][]string `json:"p,omitempty"`
	}{sp.Started, sp.Others})
	if len(rest) > 2 {
		e.suffix = append([]byte{','}, rest[1:]...)
	} else {
		e.suffix = []byte{'}'}
	}
	return e
}

// Encode returns the position of the chunk's change with key. When the
// chunk carries other tables' progress, the position's ID is the
// single-table form, which names the row alone.
func (e ChunkEncoder) Encode(key []string) core.Position {
	n := len(e.prefix) + len(e.suffix) + 2
	for _, k := range key {
		n += len(k) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, e.prefix...)
	if key == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, k := range key {
			if i > 0 {
				b = append(b, ',')
			}
			b = core.AppendJSONString(b, k, true)
		}
		b = append(b, ']')
	}
	if len(e.suffix) == 1 {
		b = append(b, e.suffix...)
		return core.Position{Version: PositionVersion, Data: b}
	}
	// The identity is the position without the other tables' progress,
	// which depends on how chunks interleaved: byte for byte the position a
	// snapshot reading one table at a time gives the row, so that a row read
	// again after a crash keeps its event ids, whatever snapshot.parallel.
	id := append(b[:len(b):len(b)], '}')
	b = append(b, e.suffix...)
	return core.Position{Version: PositionVersion, Data: b, ID: id}
}
