package webhook

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// queueMemory bounds the memory of the stored deliveries queued for Read:
// past it, a delivery the inbox committed is queued as its sequence, id and
// place in its segment only (spilled), and Read takes it back from the
// segment file, where it is durable already. A stream that stalls (a
// broker's first produce of a run, an outage) then costs memory for its
// first deliveries only, not for the whole backlog max_pending allows.
// Under a steady load the queue stays well under it: Read takes what
// arrived within its linger (readLinger), about 300 deliveries at 30k/s.
var queueMemory int64 = 2 << 20 // a variable for BenchmarkBacklogMemory

// recordOverhead is what a queued delivery holds besides its body: the
// record, its request meta (a map of headers), its parsed payload.
const recordOverhead = 1 << 10

// memory is what rec holds in the queue.
func (rec *record) memory() int64 {
	if rec.spilled {
		return 0
	}
	return int64(len(rec.body)) + recordOverhead
}

// bodySize is the length of rec's body, also once it is spilled.
func (rec *record) bodySize() int64 {
	if rec.spilled {
		return rec.size
	}
	return int64(len(rec.body))
}

// spillable says rec is stored in a segment (it has a place there) and can
// be dropped from memory: those of AckStream, held in memory only, cannot.
func (rec *record) spillable() bool {
	return rec.flen > 0 && rec.fl == nil
}

// spill drops what rec holds besides its sequence, id, accepted time and
// place: restore reads the rest back.
func (rec *record) spill() {
	rec.size = int64(len(rec.body))
	rec.spilled = true
	rec.body, rec.meta = nil, recordMeta{}
	rec.payload, rec.parsed, rec.prunedBy = nil, false, nil
}

// spillReader reads spilled deliveries back from the inbox's segments. The
// segment of a delivery not acknowledged is never deleted (compaction
// deletes only segments whose deliveries are all acknowledged), and its
// frame was synced before the delivery was queued.
type spillReader struct {
	dir string

	mu     sync.Mutex
	f      *os.File // segment n, open for reading during restore
	n      uint64
	closed bool
	// reads counts the deliveries read back, for status.
	reads atomic.Int64
}

// restore reads back the spilled records among recs, in place. Spilled
// records that follow each other in a segment are read in one read.
func (sr *spillReader) restore(recs []*record) error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	// The segment read is closed once done: it may be deleted once its
	// deliveries are acknowledged, and an open file would keep its space.
	defer sr.closeFile()
	for i := 0; i < len(recs); {
		if sr.closed {
			return ErrClosed
		}
		first := recs[i]
		if !first.spilled {
			i++
			continue
		}
		j, end := i+1, first.at+int64(first.flen)
		for j < len(recs) && recs[j].spilled && recs[j].seg == first.seg && recs[j].at == end {
			end += int64(recs[j].flen)
			j++
		}
		if err := sr.readRun(recs[i:j], end); err != nil {
			return err
		}
		sr.reads.Add(int64(j - i))
		i = j
	}
	return nil
}

// readRun reads back run, spilled records adjacent in one segment whose
// frames end at end.
func (sr *spillReader) readRun(run []*record, end int64) error {
	first := run[0]
	path := segmentPath(sr.dir, first.seg)
	if sr.f == nil || sr.n != first.seg {
		sr.closeFile()
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("read back delivery %q (sequence %d) from the inbox: %w", first.id, first.seq, err)
		}
		sr.f, sr.n = f, first.seg
	}
	size := int(end - first.at)
	// A fresh buffer when the last one is held by the records it filled:
	// the bodies read back point into it.
	data := make([]byte, size)
	if _, err := sr.f.ReadAt(data, first.at); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read back deliveries %d-%d from %s at offset %d: %w", first.seq, run[len(run)-1].seq, path, first.at, err)
	}
	for _, rec := range run {
		p, rest, ok := nextFrame(data)
		if !ok || p[0] != frameDelivery {
			return fmt.Errorf("read back delivery %q (sequence %d) from %s at offset %d: no valid delivery frame there", rec.id, rec.seq, path, rec.at)
		}
		data = rest
		got, err := decodeDelivery(p[1:])
		if err != nil {
			return fmt.Errorf("read back delivery %q from %s at offset %d: %w", rec.id, path, rec.at, err)
		}
		if got.seq != rec.seq || got.id != rec.id {
			return fmt.Errorf("read back delivery %q (sequence %d) from %s at offset %d: the frame there holds %q (sequence %d)", rec.id, rec.seq, path, rec.at, got.id, got.seq)
		}
		rec.meta, rec.body, rec.spilled = got.meta, got.body, false
	}
	return nil
}

// closeFile closes the segment open for reading, if any; sr.mu is held.
func (sr *spillReader) closeFile() {
	if sr.f != nil {
		_ = sr.f.Close()
		sr.f = nil
	}
}

// close ends reading back: restore fails with ErrClosed from then on.
func (sr *spillReader) close() error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.closed = true
	sr.closeFile()
	return nil
}
