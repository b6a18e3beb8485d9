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

// SnapshotPosition is a change's place in a snapshot.
type SnapshotPosition struct {
	// At is the log position the snapshot is consistent with: streaming
	// starts there once the snapshot is done.
	At string `json:"snap"`
	// Table is the qualified name of the table being read.
	Table string `json:"t"`
	// Key is the text form of the row's key columns, in key order.
	Key []string `json:"k"`
}

// IsSnapshot reports whether p names a change read by a snapshot.
func (p Position) IsSnapshot() bool { return p.Snapshot != nil }

// Encode returns p as a core.Position.
func (p Position) Encode() core.Position {
	if p.Snapshot != nil {
		data, _ := json.Marshal(p.Snapshot) // strings only: cannot fail
		return core.Position{Version: PositionVersion, Data: data}
	}
	return StreamPosition(p.Commit, p.Index)
}

// StreamPosition returns the position of the change at index within the
// transaction committed at commit. It is the hot path of streaming, so it
// writes the JSON by hand; commit must need no JSON escaping (LSNs, GTIDs
// and binlog coordinates don't).
func StreamPosition(commit string, index int) core.Position {
	b := make([]byte, 0, 16+len(commit)+8)
	b = append(b, `{"lsn":"`...)
	b = append(b, commit...)
	b = append(b, `","i":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, '}')
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
		Commit *string  `json:"lsn"`
		Index  int      `json:"i"`
		At     *string  `json:"snap"`
		Table  string   `json:"t"`
		Key    []string `json:"k"`
	}
	if err := json.Unmarshal(pos.Data, &raw); err != nil {
		return Position{}, fmt.Errorf("position %s: %w: %w", pos, ErrBadPosition, err)
	}
	switch {
	case raw.At != nil:
		if raw.Table == "" {
			return Position{}, fmt.Errorf("position %s: snapshot position without a table: %w", pos, ErrBadPosition)
		}
		return Position{Snapshot: &SnapshotPosition{At: *raw.At, Table: raw.Table, Key: raw.Key}}, nil
	case raw.Commit != nil:
		if raw.Index < 0 {
			return Position{}, fmt.Errorf("position %s: negative index: %w", pos, ErrBadPosition)
		}
		return Position{Commit: *raw.Commit, Index: raw.Index}, nil
	}
	return Position{}, fmt.Errorf("position %s: neither a log nor a snapshot position: %w", pos, ErrBadPosition)
}
