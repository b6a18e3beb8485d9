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

// Plan is the fixed order in which a snapshot starts its tables, and where
// it resumes. Tables are started in name order; a snapshot may read several
// at once, each by its own reader, so their changes interleave (see
// Progress).
type Plan struct {
	// Tables are qualified table names, started in this order.
	Tables []string
}

// NewPlan returns the plan starting tables in name order, so that the order
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
// p, in name order, or every table when p is nil: each table p started and
// did not finish after its last key handed out (from its start when none
// was), and every table not started. A table p names that is no longer
// part of the plan is dropped; one added to the plan since, with a name
// before p's greatest started table, counts as done, as it would have
// been had it been there from the start.
func (pl Plan) Remaining(p *SnapshotPosition) []Step {
	var out []Step
	for _, t := range pl.Tables {
		switch {
		case p == nil || t > p.StartedThrough():
			out = append(out, Step{Table: t})
		case t == p.Table:
			out = append(out, Step{Table: t, After: nonEmpty(p.Key)})
		default:
			if k, ok := p.Others[t]; ok {
				out = append(out, Step{Table: t, After: nonEmpty(k)})
			}
		}
	}
	return out
}

func nonEmpty(k []string) []string {
	if len(k) == 0 {
		return nil
	}
	return k
}

// Progress follows a snapshot whose tables are read in parallel and handed
// out chunk by chunk, interleaved in whatever order the chunks are ready,
// and gives each change the position that resumes every table: the
// runtime commits the position of the last change such that it and every
// change before it are acknowledged, so that position must say how far
// every table got by then.
//
// A chunk is the rows of one table; the tables are started in the order of
// the steps (name order), each read in key order. A position carries the
// greatest table started and the last key handed out of every table
// started and not finished, so its size grows with the tables read at once,
// not with the tables of the snapshot; the changes of one chunk share all
// of it but their own key (ChunkEncoder).
//
// A Progress is used from one goroutine, the one handing out changes.
type Progress struct {
	at string
	// sched are the tables to read, in the order they are started.
	sched []string
	// next indexes the first table of sched after hi.
	next int
	// hi is the greatest table started, "" before the first.
	hi string
	// open are the tables started and not finished, with their last key
	// handed out (nil when none was).
	open map[string][]string
	// early are tables after hi that finished without a change handed out.
	early map[string]bool
}

// NewProgress returns the progress of a snapshot consistent with at that
// reads steps (Plan.Remaining of from; from is nil for a new snapshot).
func NewProgress(at string, steps []Step, from *SnapshotPosition) *Progress {
	p := &Progress{at: at, open: map[string][]string{}, early: map[string]bool{}}
	if from != nil {
		p.hi = from.StartedThrough()
	}
	for _, st := range steps {
		p.sched = append(p.sched, st.Table)
		if st.Table <= p.hi {
			p.open[st.Table] = st.After
			p.next = len(p.sched)
		}
	}
	return p
}

// Chunk returns the encoder of the positions of a chunk of table about to
// be handed out, marking table (and every table before it not finished)
// started.
func (p *Progress) Chunk(table string) ChunkEncoder {
	if table > p.hi {
		for p.next < len(p.sched) && p.sched[p.next] <= table {
			if t := p.sched[p.next]; !p.early[t] {
				if _, ok := p.open[t]; !ok {
					p.open[t] = nil
				}
			}
			delete(p.early, p.sched[p.next])
			p.next++
		}
		p.hi = table
	}
	sp := SnapshotPosition{At: p.at, Table: table}
	if p.hi != table {
		sp.Started = p.hi
	}
	if len(p.open) > 1 {
		sp.Others = make(map[string][]string, len(p.open)-1)
		for t, k := range p.open {
			if t != table {
				sp.Others[t] = k
			}
		}
	}
	return NewChunkEncoder(sp)
}

// Read records the last key of table handed out.
func (p *Progress) Read(table string, last []string) {
	p.open[table] = last
}

// Finish records that every row of table was handed out.
func (p *Progress) Finish(table string) {
	switch {
	case table > p.hi:
		p.early[table] = true
	default:
		delete(p.open, table)
	}
}
