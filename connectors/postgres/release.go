package postgres

import (
	"bytes"
	"sync"

	"github.com/jackc/pglogrepl"
)

// ord orders stream changes: by commit LSN, then index. Two values below
// every stream change stand for the snapshot: ordSnapshot (the snapshot is
// still being acknowledged) and ordStreamStart (everything before the
// stream is acknowledged).
type ord struct {
	c pglogrepl.LSN
	i int
}

var (
	ordSnapshot    = ord{0, -2}
	ordStreamStart = ord{0, -1}
)

func (a ord) less(b ord) bool { return a.c < b.c || a.c == b.c && a.i < b.i }

// release is a promise: once every change up to key is acknowledged, the
// slot may confirm lsn.
type release struct {
	key ord
	lsn pglogrepl.LSN
}

// releaser turns acknowledgements of changes into the LSN the slot may
// confirm. It is shared by the receiver (which adds release points as
// transactions begin and commit and as the server reports idle positions)
// and Ack.
//
// A release point is added for the begin of each transaction (its commit
// LSN, so that the transaction is decoded again after a restart), for its
// commit (the end of its commit record) and for keepalives and heartbeat
// messages received between transactions (the server's position, which no
// transaction of the publication precedes unsent).
type releaser struct {
	mu sync.Mutex
	// emitted is the key of the last change handed out or skipped.
	emitted ord
	// acked is the key of the last change acknowledged.
	acked   ord
	pending []release
	flushed pglogrepl.LSN
	// lastSnap is the position of the last snapshot change read; once the
	// snapshot is done, acknowledging it acknowledges the whole snapshot.
	lastSnap []byte
	ackSnap  []byte
	snapDone bool
}

func newReleaser(start pglogrepl.LSN, snapshot bool) *releaser {
	r := &releaser{flushed: start, emitted: ordStreamStart, acked: ordStreamStart}
	if snapshot {
		r.emitted, r.acked = ordSnapshot, ordSnapshot
	}
	return r
}

// flush returns the LSN the slot may confirm.
func (r *releaser) flush() pglogrepl.LSN {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed
}

// add records a release point, applying it at once when already covered.
func (r *releaser) add(key ord, lsn pglogrepl.LSN) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, release{key, lsn})
	r.apply()
}

// idle records a release point at lsn after everything emitted so far.
func (r *releaser) idle(lsn pglogrepl.LSN) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, release{r.emitted, lsn})
	r.apply()
}

// emit records that the stream change at key was handed out or skipped.
func (r *releaser) emit(key ord, skipped bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.emitted.less(key) {
		r.emitted = key
	}
	if skipped && r.acked.less(key) && !r.acked.less(ordStreamStart) {
		r.acked = key
		r.apply()
	}
}

// snapshotRead records the last snapshot change read and whether the
// snapshot is done.
func (r *releaser) snapshotRead(last []byte, done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last != nil {
		r.lastSnap = last
	}
	if done {
		r.snapDone = true
		r.checkSnapshot()
	}
}

func (r *releaser) checkSnapshot() {
	if r.snapDone && r.acked == ordSnapshot && (r.lastSnap == nil || bytes.Equal(r.lastSnap, r.ackSnap)) {
		r.acked = ordStreamStart
		if r.emitted.less(ordStreamStart) {
			r.emitted = ordStreamStart
		}
		r.apply()
	}
}

// ackStream records the acknowledgement of the stream change at key.
func (r *releaser) ackStream(key ord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acked.less(key) {
		r.acked = key
	}
	r.apply()
}

// ackSnapshot records the acknowledgement of a snapshot change.
func (r *releaser) ackSnapshot(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ackSnap = bytes.Clone(data)
	r.checkSnapshot()
}

// apply confirms the release points covered by acked. Their keys never
// decrease (each is at or after the last emitted change), so they are
// consumed from the front.
func (r *releaser) apply() {
	n := 0
	for n < len(r.pending) && !r.acked.less(r.pending[n].key) {
		if lsn := r.pending[n].lsn; lsn > r.flushed {
			r.flushed = lsn
		}
		n++
	}
	if n > 0 {
		r.pending = r.pending[n:]
		if cap(r.pending) > 1024 && len(r.pending) < cap(r.pending)/4 {
			r.pending = append([]release(nil), r.pending...)
		}
	}
}
