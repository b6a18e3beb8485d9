package cdc

import (
	"errors"
	"fmt"
	"slices"
)

// SnapshotMode says when a connector reads the existing rows of its tables
// before streaming their changes.
type SnapshotMode string

// The snapshot modes.
const (
	// SnapshotInitial reads the tables when the connector has no
	// checkpoint, then streams. It is the default.
	SnapshotInitial SnapshotMode = "initial"
	// SnapshotNever only streams, from the checkpoint or, without one,
	// from where the replication slot (or the log) stands.
	SnapshotNever SnapshotMode = "never"
	// SnapshotWhenNeeded reads the tables when there is no checkpoint, and
	// also when the checkpoint can no longer be resumed from because the
	// log behind it is gone (a dropped slot, purged binlogs).
	SnapshotWhenNeeded SnapshotMode = "when_needed"
)

// SnapshotModes lists the modes, for configuration enums.
func SnapshotModes() []string {
	return []string{string(SnapshotInitial), string(SnapshotNever), string(SnapshotWhenNeeded)}
}

// ErrLogGone is wrapped by Decide's error when a checkpoint exists but the
// log it points into does not, and the mode does not allow a new snapshot.
var ErrLogGone = errors.New("the change log behind the checkpoint is gone")

// Decide says whether to snapshot, given the mode, whether a checkpoint
// exists (hasCheckpoint), whether the checkpoint is inside an unfinished
// snapshot (inSnapshot) and whether the log can still be read from the
// checkpoint (logKept: the slot exists, the binlog is there).
func Decide(mode SnapshotMode, hasCheckpoint, inSnapshot, logKept bool) (bool, error) {
	switch {
	case !hasCheckpoint:
		return mode != SnapshotNever, nil
	case !logKept:
		if mode == SnapshotWhenNeeded {
			return true, nil
		}
		return false, fmt.Errorf("%w: changes since the checkpoint cannot be read; set snapshot.mode to %q to read the tables again, or remove the checkpoint to start over", ErrLogGone, SnapshotWhenNeeded)
	case inSnapshot:
		return true, nil
	}
	return false, nil
}

// Plan is the fixed order in which a snapshot reads its tables, and where it
// resumes.
type Plan struct {
	// Tables are qualified table names, read in this order.
	Tables []string
}

// NewPlan returns the plan reading tables in name order, so that the order
// survives restarts whatever order the tables were listed or discovered in.
func NewPlan(tables []string) Plan {
	t := slices.Clone(tables)
	slices.Sort(t)
	return Plan{Tables: slices.Compact(t)}
}

// Step is one table of a snapshot still to read.
type Step struct {
	Table string
	// After is the text form of the last key read, or nil to read the
	// table from its start.
	After []string
}

// Remaining returns the tables still to read after the snapshot change at
// p, or every table when p is nil. A table of p that is no longer part of
// the plan resumes at the next one in name order.
func (pl Plan) Remaining(p *SnapshotPosition) []Step {
	var out []Step
	for _, t := range pl.Tables {
		switch {
		case p == nil || t > p.Table:
			out = append(out, Step{Table: t})
		case t == p.Table:
			out = append(out, Step{Table: t, After: p.Key})
		}
	}
	return out
}
