package webhook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// queueMemory bounds the memory of the stored deliveries queued for Read:
// past it, a delivery the inbox committed is not kept in memory at all.
// It joins a spilled run, the place in a segment of deliveries that follow
// each other there, and Read takes it back from the segment file, where it
// is durable already. A stream that stalls (a broker's first produce of a
// run, an outage) then costs memory for its first deliveries only, not for
// the backlog max_pending allows, and an inbox opened on a backlog of any
// size queues it as a run per segment. Under a steady load the queue stays
// well under it: Read takes what arrived within its linger (readLinger),
// about 300 deliveries at 30k/s.
var queueMemory int64 = 2 << 20 // a variable for BenchmarkBacklogMemory

// recordOverhead is what a queued delivery holds besides its body: the
// record, its request meta (a map of headers), its parsed payload.
const recordOverhead = 1 << 10

// memory is what rec holds in the queue.
func (rec *record) memory() int64 {
	return int64(len(rec.body)) + recordOverhead
}

// spillable says rec is stored in a segment (it has a place there) and
// may leave memory: those of AckStream, held in memory only, may not.
func (rec *record) spillable() bool {
	return rec.flen > 0 && rec.fl == nil
}

// spillRun is deliveries stored one after another in segment seg, from
// offset start to end, that the queue does not hold in memory: count of
// them, the first with sequence seq and the others with the sequences
// after it. Between their frames there are only state frames.
type spillRun struct {
	seg        uint64
	start, end int64
	seq        uint64
	count      int
}

// extend adds rec to the run when it is the run's next delivery in the
// same segment, and reports whether it did.
func (sr *spillRun) extend(rec *record) bool {
	if rec.seg != sr.seg || rec.at < sr.end || rec.seq != sr.seq+uint64(sr.count) {
		return false
	}
	sr.end = rec.at + int64(rec.flen)
	sr.count++
	return true
}

// runOf is the run of rec alone.
func runOf(rec *record) spillRun {
	return spillRun{seg: rec.seg, start: rec.at, end: rec.at + int64(rec.flen), seq: rec.seq, count: 1}
}

// spillReader reads spilled deliveries back from the inbox's segments. The
// segment of a delivery not acknowledged is never deleted (compaction
// deletes only segments whose deliveries are all acknowledged), and its
// frame was synced before the delivery was queued.
type spillReader struct {
	dir string

	mu     sync.Mutex
	closed bool
	// reads counts the deliveries read back, for status.
	reads atomic.Int64
}

// read reads back the first n deliveries of run (n at most run.count) and
// returns them with the offset where the rest of the run starts. The
// segment is open only while it reads: it may be deleted once its
// deliveries are acknowledged, and an open file would keep its space.
func (sr *spillReader) read(run spillRun, n int) ([]*record, int64, error) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.closed {
		return nil, 0, ErrClosed
	}
	path := segmentPath(sr.dir, run.seg)
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read back delivery %d from the inbox: %w", run.seq, err)
	}
	defer f.Close()
	recs := make([]*record, 0, n)
	at := run.start
	// Read about what n deliveries take, judged by the run's average
	// frame, in one read; a frame cut at the end of a read is read again
	// whole in the next.
	avg := (run.end - run.start) / int64(run.count)
	for len(recs) < n {
		size := min(run.end-at, int64(n-len(recs))*avg+4<<10)
		if size <= 0 {
			return nil, 0, fmt.Errorf("read back deliveries from %s: the run ends at offset %d after %d of %d deliveries", path, run.end, len(recs), n)
		}
		data := make([]byte, size)
		if _, err := f.ReadAt(data, at); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, fmt.Errorf("read back delivery %d from %s at offset %d: %w", run.seq+uint64(len(recs)), path, at, err)
		}
		rest := data
		for len(recs) < n {
			off := at + int64(len(data)-len(rest))
			p, next, ok := nextFrame(rest)
			if !ok {
				if need := frameNeed(rest); need > int64(len(rest)) && off+need <= run.end {
					// Cut by the end of this read: the next read starts
					// at it and takes it whole.
					avg = max(avg, need)
					break
				}
				return nil, 0, fmt.Errorf("read back delivery %d from %s at offset %d: no valid frame there", run.seq+uint64(len(recs)), path, off)
			}
			rest = next
			if p[0] != frameDelivery {
				continue
			}
			want := run.seq + uint64(len(recs))
			rec, err := decodeDelivery(p[1:])
			if err != nil {
				return nil, 0, fmt.Errorf("read back delivery %d from %s at offset %d: %w", want, path, off, err)
			}
			if rec.seq != want {
				return nil, 0, fmt.Errorf("read back delivery %d from %s at offset %d: the frame there holds sequence %d", want, path, off, rec.seq)
			}
			rec.seg, rec.at, rec.flen = run.seg, off, frameHeader+len(p)
			recs = append(recs, rec)
		}
		at += int64(len(data) - len(rest))
	}
	sr.reads.Add(int64(len(recs)))
	return recs, at, nil
}

// frameNeed is the length of the frame at the start of b, header
// included, as far as its header tells; 0 when the header cannot be one.
func frameNeed(b []byte) int64 {
	if len(b) < frameHeader {
		return frameHeader
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > maxFrame {
		return 0
	}
	return frameHeader + int64(n)
}

// close ends reading back: read fails with ErrClosed from then on.
func (sr *spillReader) close() error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.closed = true
	return nil
}
