package core

import (
	"slices"
	"sync"
)

// Tracker turns out-of-order completions into an in-order low watermark.
// A source's changes are registered in read order with Add; each is marked
// complete with Done when every event derived from it is durable. The
// watermark is the position of the last change such that it and every change
// before it are complete: only the watermark may be committed.
//
// A Tracker is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	first   uint64 // sequence number of pending[head]
	pending []trackEntry
	head    int
	mark    Position
	marked  bool
}

type trackEntry struct {
	pos  Position
	done bool
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{} }

// Add registers the next change in read order and returns its sequence
// number.
func (t *Tracker) Add(pos Position) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.first + uint64(len(t.pending)-t.head)
	t.pending = append(t.pending, trackEntry{pos: pos})
	return seq
}

// AddChanges registers chs, in order, as Add does for each, under one lock,
// and returns the sequence number of the first; the others follow it.
func (t *Tracker) AddChanges(chs []Change) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.first + uint64(len(t.pending)-t.head)
	t.pending = slices.Grow(t.pending, len(chs))
	for i := range chs {
		t.pending = append(t.pending, trackEntry{pos: chs[i].Position})
	}
	return seq
}

// DoneAll marks every sequence number of seqs complete, as Done does for
// each, under one lock, and reports the watermark when it advanced.
func (t *Tracker) DoneAll(seqs []uint64) (Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, seq := range seqs {
		if seq < t.first {
			continue
		}
		if i := t.head + int(seq-t.first); i < len(t.pending) {
			t.pending[i].done = true
		}
	}
	return t.advance()
}

// Done marks the change with sequence number seq complete. It reports the new
// watermark when it advanced. Marking a sequence twice, or one never added,
// does nothing.
func (t *Tracker) Done(seq uint64) (Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < t.first {
		return Position{}, false
	}
	i := t.head + int(seq-t.first)
	if i >= len(t.pending) {
		return Position{}, false
	}
	t.pending[i].done = true
	return t.advance()
}

// advance moves the watermark past the completed changes at the head.
// Callers hold mu.
func (t *Tracker) advance() (Position, bool) {
	advanced := false
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.mark = t.pending[t.head].pos
		t.marked = true
		t.pending[t.head] = trackEntry{}
		t.head++
		t.first++
		advanced = true
	}
	if t.head > 1024 && t.head*2 >= len(t.pending) {
		n := copy(t.pending, t.pending[t.head:])
		clear(t.pending[n:])
		t.pending = t.pending[:n]
		t.head = 0
	}
	if !advanced {
		return Position{}, false
	}
	return t.mark, true
}

// Watermark returns the last committed-safe position, if any change has
// completed.
func (t *Tracker) Watermark() (Position, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mark, t.marked
}

// Pending returns how many added changes are not yet below the watermark.
func (t *Tracker) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) - t.head
}
