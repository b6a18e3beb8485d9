package poll

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tributary/tributary/core"
)

// seenPruneEvery is how many seen entries are written between two
// deletes of the entries below the look-back window.
const seenPruneEvery = 16384

// pendingKind tells FIFO entries apart.
const (
	entryChange = iota
	entryRunEnd
)

// pending is a change emitted and not yet acknowledged, with what its
// acknowledgement makes durable.
type pending struct {
	kind int
	pos  []byte // shared with the change's Position.Data
	// cursor mode
	id [16]byte
	c  cval
	// snapshot mode
	key  string
	hash []byte // nil for a delete
	ver  int64
	// each mode
	done func(ctx context.Context) error
	// run end
	runNS int64
}

// Ack makes durable what the changes up to pos, and every change before
// them, imply: seen entries and the watermark, index entries, completed
// runs, processed files. A position this Source did not read is ignored.
func (s *Source) Ack(ctx context.Context, pos core.Position) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.st == nil {
		s.mu.Unlock()
		return nil
	}
	found := -1
	for j := s.head; j < len(s.fifo); j++ {
		if s.fifo[j].kind == entryChange && bytes.Equal(s.fifo[j].pos, pos.Data) {
			found = j
			break
		}
	}
	if found < 0 {
		s.mu.Unlock()
		return nil
	}
	end := found + 1
	for end < len(s.fifo) && s.fifo[end].kind == entryRunEnd {
		end++
	}
	entries := s.fifo[s.head:end]
	st := s.st
	s.mu.Unlock()
	return s.apply(ctx, st, entries, end)
}

// apply commits entries (the FIFO from head to end) and pops them.
// Callers hold ackMu.
func (s *Source) apply(ctx context.Context, st *state, entries []pending, end int) error {
	kind := s.cfg.Cursor
	b := commitBatch{kind: kind}
	var dones []func(context.Context) error
	mark, hasMark := s.ackMark, s.hasAck
	for i := range entries {
		e := &entries[i]
		switch {
		case e.kind == entryRunEnd:
			b.doneNS = e.runNS
		case s.cfg.Mode == ModeCursor:
			if !hasMark || mark.less(e.c, kind) {
				mark, hasMark = e.c, true
			}
		case s.cfg.Mode == ModeSnapshot:
			if e.hash == nil {
				b.goneKeys = append(b.goneKeys, e.key)
				b.goneVer = append(b.goneVer, e.ver)
			} else {
				b.upsertKeys = append(b.upsertKeys, e.key)
				b.upsertHash = append(b.upsertHash, e.hash)
				b.upsertVer = append(b.upsertVer, e.ver)
			}
		case s.cfg.Mode == ModeEach:
			if e.done != nil {
				dones = append(dones, e.done)
			}
		}
	}
	if s.cfg.Mode == ModeCursor && hasMark {
		lower := s.lowerBound(mark)
		for i := range entries {
			e := &entries[i]
			if e.kind == entryChange && !e.c.less(lower, kind) {
				b.seenIDs = append(b.seenIDs, e.id)
				b.seenCs = append(b.seenCs, e.c)
			}
		}
		b.mark, b.hasMark = mark, true
		// Entries below the window are ignored when the set is loaded, so
		// they are deleted in bulk rather than on every acknowledgement.
		s.seenWritten += len(b.seenIDs)
		if s.seenWritten >= seenPruneEvery {
			b.prune, b.hasPrune = lower, true
		}
	}
	b.goneNS = s.now().UnixNano()
	rids, err := st.commit(ctx, &b)
	if err != nil {
		return err
	}
	if b.hasPrune {
		s.seenWritten = 0
	}
	for _, d := range dones {
		if err := d(ctx); err != nil {
			err = fmt.Errorf("finish acknowledged records: %w", err)
			s.setError(err)
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackMark, s.hasAck = mark, hasMark
	if s.cfg.Mode == ModeSnapshot {
		for i := range entries {
			e := &entries[i]
			if e.kind != entryChange {
				continue
			}
			ov := s.overlay[e.key]
			if ov == nil {
				continue
			}
			ov.refs--
			if ov.refs > 0 {
				continue
			}
			delete(s.overlay, e.key)
			if rid, ok := rids[e.key]; ok && s.running && ov.seenRun == s.runSeq {
				s.marks.set(rid)
			}
		}
	}
	clear(s.fifo[s.head:end])
	s.head = end
	if s.head == len(s.fifo) {
		s.fifo, s.head = s.fifo[:0], 0
	} else if s.head > 4096 && s.head > len(s.fifo)/2 {
		n := copy(s.fifo, s.fifo[s.head:])
		clear(s.fifo[n:])
		s.fifo, s.head = s.fifo[:n], 0
	}
	return nil
}
