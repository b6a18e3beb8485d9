package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by a source or inbox that has been closed.
var ErrClosed = errors.New("webhook source closed")

// ackDelay is the longest an ack waits to be applied when no delivery
// arrives to carry it.
const ackDelay = 200 * time.Millisecond

// maxBatch and maxBatchBytes bound how many deliveries, and how many body
// bytes, one group commit writes.
const (
	maxBatch      = 1024
	maxBatchBytes = 16 << 20
)

// record is one delivery as the inbox keeps it.
type record struct {
	seq      uint64
	id       string
	received time.Time
	meta     recordMeta
	// head is the record's encoding up to its body (appendRecordHead),
	// filled by the submitter so that the single writer does not spend
	// its time encoding.
	head []byte
	// headBuf is where head came from in recordHeads, to return it once
	// head is written.
	headBuf *[]byte
	body    []byte
	// payload is the parsed body when the handler already parsed it,
	// pruned to the paths of prunedBy when that is not nil.
	payload  any
	parsed   bool
	prunedBy *pathNode
	// fl is the delivery's wait for the stream when it is held in memory
	// (AckStream) rather than stored.
	fl *flight
	// seg, at and flen place the record's frame in the inbox once it is
	// stored: segment number, offset, length (0 when not stored).
	seg  uint64
	at   int64
	flen int
}

// recordMeta is the request detail stored beside the body. The maps hold
// strings; they are typed as the change's meta wants them, so that they
// pass to it without a copy.
type recordMeta struct {
	Method      string
	Path        string
	RemoteAddr  string
	ContentType string
	Headers     map[string]any
	Query       map[string]any
	PathParams  map[string]any
}

// writeReq is one delivery waiting for the writer.
type writeReq struct {
	rec  *record
	dup  bool
	err  error
	done chan struct{}
}

// writeReqs recycles the writer requests of the handlers.
var writeReqs = sync.Pool{New: func() any { return &writeReq{done: make(chan struct{}, 1)} }}

// recordHeads recycles the buffers submitters encode record heads in.
var recordHeads = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// inbox is the durable, deduplicating queue between the HTTP handler and
// the source's Read: an append-only log of segments (see inboxlog.go). One
// writer goroutine writes the deliveries of all concurrent requests in one
// write and one fdatasync (group commit), then answers them all.
//
// Delivery ids are remembered by the dedup index (dedup.go,
// inboxdedup.go): the newest in memory up to a bound, older ones in sorted
// run files with a Bloom filter each in memory. An id is remembered for
// at least one window.
type inbox struct {
	dir    string
	window time.Duration
	// segmentBytes is the size beyond which a new segment starts.
	segmentBytes int64
	now          func() time.Time
	log          *slog.Logger

	// onCommit receives the records of each commit that were not
	// duplicates, in sequence order, from the writer goroutine, before
	// their handlers answer: a record whose 2xx is out is visible to Read.
	// onAnswered, when set, follows once the handlers are answered.
	onCommit   func([]*record)
	onAnswered func()

	reqs    chan *writeReq
	ackTo   atomic.Uint64
	quit    chan struct{}
	stopped chan struct{}
	quitMu  sync.Once
	running bool

	// commits and stored count group commits and the deliveries they
	// stored, for status.
	commits atomic.Int64
	stored  atomic.Int64

	// dmu guards the dedup index's sets and runs (dd.hot, dd.frozen,
	// dd.runs, dd.cutoff and the runs' files): besides the writer, with
	// AckMode AckStream the handlers look ids up (run.admit) and Ack adds
	// the ids the stream acknowledged (run.land). It also guards ids and
	// dclosed.
	dmu sync.Mutex
	// ids are the acknowledged ids of AckStream (appendSeenID), in the
	// hot set already, not yet written to the seen file; idsReady wakes
	// the writer for them.
	ids      []byte
	idsReady chan struct{}
	// dclosed says the dedup index is closed: lookups are refused.
	dclosed bool
	// warnMu guards warnMsg and warnAt: lookups may warn from handlers.
	warnMu sync.Mutex
	// rd reads spilled deliveries back for Read (spill.go).
	rd spillReader
	// damaged counts the damaged stretches of segments skipped when the
	// inbox opened (scanFrames), for status.
	damaged int

	// Writer-only state.
	f        *os.File   // the active segment
	off      int64      // its length of valid frames
	unsynced bool       // frames written to f since its last fdatasync
	torn     bool       // a failed write left bytes past off that are not cut yet
	active   *segment   // the active segment
	segs     []*segment // the older segments, oldest first
	nextSeq  uint64     // the last sequence given
	acked    uint64     // the acknowledged sequence written to the log
	dd       dedupIndex
	// spare receives the next segment's file, filled with zeros ahead by
	// a goroutine that spareBusy says is running (see prepareSpare).
	spare     chan spareFile
	spareBusy bool
	spareWG   sync.WaitGroup
	// removeWG tracks the deletion of compacted segments (compact).
	removeWG sync.WaitGroup
	seenF    *os.File // the current generation's seen file
	seenOff  int64
	// seenUnsynced says ids were written to seenF since its last
	// fdatasync; idsBuf is the scratch their frames are built in.
	seenUnsynced bool
	idsBuf       []byte
	buf          []byte
	fresh        []digest
	// lastCommit is when the last write of deliveries began (wall clock).
	lastCommit time.Time
	// warnMsg and warnAt are the last upkeep failure logged and when.
	warnMsg string
	warnAt  time.Time
}

// openInbox opens (creating when missing) the inbox in stateDir and
// returns the deliveries it holds that were not acknowledged, in order, as
// runs in their segments. It does not start the writer: call start once
// onCommit is set.
func openInbox(ctx context.Context, stateDir string, window time.Duration, now func() time.Time) (*inbox, backlog, error) {
	return openInboxLimit(ctx, stateDir, window, now, defaultHotLimit)
}

// openInboxLimit is openInbox with the dedup index holding at most
// hotLimit ids in memory before sealing them into a run.
func openInboxLimit(ctx context.Context, stateDir string, window time.Duration, now func() time.Time, hotLimit int) (*inbox, backlog, error) {
	return openInboxLog(ctx, stateDir, window, now, hotLimit, slog.New(slog.DiscardHandler))
}

// openInboxLog is openInboxLimit logging to log, also while it opens.
func openInboxLog(ctx context.Context, stateDir string, window time.Duration, now func() time.Time, hotLimit int, log *slog.Logger) (*inbox, backlog, error) {
	dir := filepath.Join(stateDir, inboxDir)
	ib := &inbox{
		dd:           dedupIndex{hotLimit: hotLimit},
		dir:          dir,
		rd:           spillReader{dir: dir},
		window:       window,
		segmentBytes: segmentBytes,
		now:          now,
		log:          log,
		reqs:         make(chan *writeReq, 4*maxBatch),
		idsReady:     make(chan struct{}, 1),
		spare:        make(chan spareFile, 1),
		quit:         make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	fail := func(err error) (*inbox, backlog, error) {
		_ = ib.closeFiles()
		return nil, backlog{}, fmt.Errorf("open webhook inbox %s: %w", dir, err)
	}
	if err := migrateLegacy(ctx, stateDir, dir, now); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	if err := removeSpares(dir); err != nil {
		return fail(err)
	}
	if err := ib.loadSeen(); err != nil {
		return fail(err)
	}
	bl, err := ib.loadSegments()
	if err != nil {
		return fail(err)
	}
	n := uint64(1)
	if len(ib.segs) > 0 {
		n = ib.segs[len(ib.segs)-1].n + 1
	}
	if err := ib.openSegment(n); err != nil {
		return fail(err)
	}
	return ib, bl, nil
}

// backlog is the deliveries stored and not acknowledged that an inbox
// opened on: runs of them in their segments, their count and the bytes
// of their bodies.
type backlog struct {
	runs  []spillRun
	n     int
	bytes int64
}

// loadSegments reads every segment, returns the deliveries not
// acknowledged as runs, and sets the sequences. It keeps none of them in
// memory: an inbox holding a large backlog opens at the cost of a run per
// segment.
func (ib *inbox) loadSegments() (backlog, error) {
	nums, err := listed(ib.dir, "seg-")
	if err != nil {
		return backlog{}, err
	}
	for _, n := range nums {
		seg, err := ib.loadSegment(n)
		if err != nil {
			return backlog{}, err
		}
		if k := len(ib.segs); k > 0 && seg.floored {
			// The segment before this one ended with the deliveries up to
			// this one's floor, all synced before it was started: those
			// missing from its end were damaged there, not cut by a crash
			// (a restart starts its segment from the deliveries it read).
			prev := ib.segs[k-1]
			if seen := max(prev.last, prev.floor); prev.n+1 == seg.n && seg.floor > seen {
				ib.damaged++
				ib.log.Error("webhook inbox: deliveries missing from the end of a segment (damaged on disk, or a write a crash cut before they were answered)",
					"file", prev.path, "first_sequence", seen+1, "last_sequence", seg.floor)
			}
		}
		ib.segs = append(ib.segs, seg)
	}
	ib.nextSeq = max(ib.nextSeq, ib.acked)
	// The acknowledged sequence is known once every segment is read: the
	// segments holding deliveries after it are read again for their
	// places.
	var bl backlog
	for _, seg := range ib.segs {
		if seg.last > ib.acked {
			if err := ib.segmentBacklog(seg, &bl); err != nil {
				return backlog{}, err
			}
		}
	}
	return bl, nil
}

// loadSegment reads segment n: the ids it holds join the dedup index, its
// states advance the sequences, and damaged bytes in it are logged.
func (ib *inbox) loadSegment(n uint64) (*segment, error) {
	seg := &segment{n: n, path: segmentPath(ib.dir, n)}
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return nil, err
	}
	// before is the sequence of the segment's last delivery read, to say
	// which deliveries a damaged stretch held.
	var before uint64
	var gaps []skipped
	logGap := func(g skipped, next ...any) {
		ib.log.Error("webhook inbox: damaged bytes in a segment skipped (damage on disk, or a write a crash cut before its deliveries were answered); the deliveries they held are lost",
			append([]any{"file", seg.path, "offset", g.at, "bytes", g.n, "after_sequence", before}, next...)...)
	}
	damaged, err := scanFrames(data, func(at int64, p []byte, gap *skipped) error {
		if gap != nil {
			gaps = append(gaps, *gap)
		}
		switch p[0] {
		case frameDelivery:
			r, err := decodeDelivery(p[1:])
			if err != nil {
				return err
			}
			for _, g := range gaps {
				logGap(g, "next_sequence", r.seq)
			}
			gaps = gaps[:0]
			before = r.seq
			seg.last = r.seq
			seg.ids = appendSeenID(seg.ids, r.received.UnixNano(), r.id)
			ib.remember(r.id, r.received)
			ib.nextSeq = max(ib.nextSeq, r.seq)
		case frameState:
			d := decoder{b: p[1:]}
			acked, next := d.uvarint(), d.uvarint()
			if d.err != nil {
				return fmt.Errorf("state: %w", d.err)
			}
			ib.acked = max(ib.acked, acked)
			ib.nextSeq = max(ib.nextSeq, next)
			if at == 0 {
				seg.floor, seg.floored = next, true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", seg.path, err)
	}
	for _, g := range gaps {
		logGap(g)
	}
	ib.damaged += damaged
	return seg, nil
}

// segmentBacklog adds to bl the runs of seg's deliveries after the
// acknowledged sequence.
func (ib *inbox) segmentBacklog(seg *segment, bl *backlog) error {
	whole, err := os.ReadFile(seg.path)
	if err != nil {
		return err
	}
	var run spillRun
	_, err = scanFrames(whole, func(at int64, p []byte, gap *skipped) error {
		if gap != nil && run.count > 0 {
			// A run does not span damaged bytes: Read would fail on them.
			bl.runs = append(bl.runs, run)
			run = spillRun{}
		}
		if p[0] != frameDelivery {
			return nil
		}
		r, err := decodeDelivery(p[1:])
		if err != nil {
			return err
		}
		if r.seq <= ib.acked {
			return nil
		}
		r.seg, r.at, r.flen = seg.n, at, frameHeader+len(p)
		if run.count == 0 || !run.extend(r) {
			if run.count > 0 {
				bl.runs = append(bl.runs, run)
			}
			run = runOf(r)
		}
		bl.n++
		bl.bytes += int64(len(r.body))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", seg.path, err)
	}
	if run.count > 0 {
		bl.runs = append(bl.runs, run)
	}
	return nil
}

// openSegment creates segment n, starting with the state, as the active
// one; the previous active segment joins the older ones.
func (ib *inbox) openSegment(n uint64) error {
	seg := &segment{n: n, path: segmentPath(ib.dir, n)}
	first := appendState(nil, ib.acked, ib.nextSeq)
	var (
		f   *os.File
		err error
	)
	if ib.spareBusy {
		sp := <-ib.spare
		ib.spareBusy = false
		f, err = sp.use(seg.path, first)
	}
	if f == nil {
		if err != nil {
			ib.log.Warn("webhook inbox: preallocated segment unusable; creating one", "file", seg.path, "error", err)
		}
		if f, err = createLog(seg.path, first); err != nil {
			return fmt.Errorf("create segment: %w", err)
		}
	}
	if ib.f != nil {
		if err := ib.sync(); err != nil {
			f.Close()
			_ = os.Remove(seg.path)
			return err
		}
		_ = ib.f.Close()
		ib.segs = append(ib.segs, ib.active)
	}
	ib.f, ib.off, ib.active = f, int64(len(first)), seg
	return nil
}

// forget marks the deliveries up to and including the one holding
// delivery id as acknowledged: the stream already holds them (a checkpoint
// says so) though their ack did not reach the inbox before a stop. bl is
// the stored backlog, read back from the segments to find id; forget
// returns what remains of it. It is called before start.
func (ib *inbox) forget(_ context.Context, bl backlog, id string) (backlog, error) {
	var n int
	var bytes int64
	for i, run := range bl.runs {
		for left := run; left.count > 0; {
			recs, next, err := ib.rd.read(left, min(left.count, readLimit))
			if err != nil {
				return bl, fmt.Errorf("forget checkpointed deliveries through %q: %w", id, err)
			}
			for j, r := range recs {
				n++
				bytes += int64(len(r.body))
				if r.id != id {
					continue
				}
				if err := ib.write(appendState(nil, r.seq, ib.nextSeq), true); err != nil {
					return bl, fmt.Errorf("forget checkpointed deliveries through %q: %w", id, err)
				}
				ib.acked = r.seq
				ib.ackTo.Store(r.seq)
				rest := backlog{n: bl.n - n, bytes: bl.bytes - bytes}
				if k := j + 1; left.count > k {
					// The rest of this run starts after r.
					cut := left
					cut.start, cut.seq, cut.count = r.at+int64(r.flen), r.seq+1, left.count-k
					rest.runs = append(rest.runs, cut)
				}
				rest.runs = append(rest.runs, bl.runs[i+1:]...)
				return rest, nil
			}
			left.start, left.seq, left.count = next, left.seq+uint64(len(recs)), left.count-len(recs)
		}
	}
	return bl, nil
}

// start runs the writer goroutine.
func (ib *inbox) start() {
	ib.running = true
	go ib.run()
}

// submit stores rec durably (or finds it a duplicate) and returns once the
// write holding it is synced. It is safe for concurrent use.
func (ib *inbox) submit(ctx context.Context, rec *record) (dup bool, err error) {
	if rec.head == nil {
		hp := recordHeads.Get().(*[]byte)
		rec.head, rec.headBuf = appendRecordHead((*hp)[:0], rec), hp
	}
	select {
	case <-ib.quit:
		return false, ErrClosed
	default:
	}
	req := writeReqs.Get().(*writeReq)
	req.rec = rec
	// The queue has room unless the writer is far behind: sent without
	// ctx.Done, which would allocate the request context's channel for
	// every delivery.
	select {
	case ib.reqs <- req:
	default:
		select {
		case ib.reqs <- req:
		case <-ib.quit:
			req.rec = nil
			writeReqs.Put(req)
			return false, ErrClosed
		case <-ctx.Done():
			req.rec = nil
			writeReqs.Put(req)
			return false, ctx.Err()
		}
	}
	select {
	case <-req.done:
	case <-ib.stopped:
		select {
		case <-req.done:
		default:
			// The writer stopped without answering: req stays with it.
			return false, ErrClosed
		}
	}
	dup, err = req.dup, req.err
	*req = writeReq{done: req.done}
	writeReqs.Put(req)
	return dup, err
}

// finish answers a writer request.
func (r *writeReq) finish() {
	select {
	case r.done <- struct{}{}:
	default:
	}
}

// ack asks the writer to forget every delivery up to seq, in its next
// write. It does not wait.
func (ib *inbox) ack(seq uint64) {
	for {
		cur := ib.ackTo.Load()
		if seq <= cur || ib.ackTo.CompareAndSwap(cur, seq) {
			return
		}
	}
}

func (ib *inbox) run() {
	defer close(ib.stopped)
	batch := make([]*writeReq, 0, maxBatch)
	// Acks ride along with the next deliveries' write; when none come,
	// the ticker applies them, so that an ack never costs a write of its
	// own under load.
	tick := time.NewTicker(ackDelay)
	defer tick.Stop()
	var next *writeReq // taken from the queue but left for the next batch
	for {
		batch = batch[:0]
		size := 0
		ticked := false
		if next != nil {
			batch, size, next = append(batch, next), len(next.rec.body), nil
		} else {
			select {
			case r := <-ib.reqs:
				batch, size = append(batch, r), len(r.rec.body)
			case <-ib.idsReady:
			case <-tick.C:
				ticked = true
			case <-ib.quit:
				ib.drain()
				return
			}
		}
		if len(batch) > 0 {
			// At most one group commit per window: under a steady load a
			// delivery waits at most groupWindow for the deliveries that
			// arrive with it, rather than for a count to fill, and one
			// fdatasync carries them all. Past the window (an idle
			// sidecar, or a commit that took longer) the writer commits
			// what is queued at once: it never yields to let more
			// arrive, since a yield puts it on the scheduler's global
			// queue behind every handler the network woke, and the
			// commit, which all the waiting deliveries need, comes
			// milliseconds later (a runtime/trace at 5k deliveries/s:
			// 4-7 ms).
			if wait := time.Until(ib.lastCommit.Add(groupWindow)); wait > 0 {
				if !ib.pause(wait) {
					ib.drainWith(batch)
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r := <-ib.reqs:
				if size+len(r.rec.body) > maxBatchBytes {
					next = r
					break fill
				}
				batch, size = append(batch, r), size+len(r.rec.body)
			default:
				break fill
			}
		}
		ib.commitBatch(batch)
		ib.maintain()
		ib.writeIDs(ticked)
	}
}

// removeSegment deletes a compacted segment. Tests replace it to hold the
// deletion.
var removeSegment = os.Remove

// groupWindow is the least time between the starts of two group commits.
// An idle sidecar commits a delivery at once (the last commit is older);
// under load, commits follow each other every fdatasync or every window,
// whichever is longer, so each carries what arrived meanwhile: at 5k
// deliveries/s about 5 per commit instead of one or two, for at most 1 ms
// more latency. Committing as soon as the previous commit ends instead
// (no window) was measured at 5k deliveries/s on the 2-core bench machine:
// two to three times the commits, and more CPU per delivery, for no
// better p99.
const groupWindow = time.Millisecond

// exactPause is the longest pause taken by sleepExact rather than a
// timer: a sleeping writer does not see the inbox stop, so only short
// pauses are taken that way.
const exactPause = 2 * time.Millisecond

// pause waits d, and returns false when the inbox stops first (for a
// pause up to exactPause, when it stopped meanwhile). A pause up to
// exactPause is exact: the group window is a millisecond, and with a
// timer the writer woke 1-2 ms after the window's start at 5k
// deliveries/s, which made a delivery wait 1.25 ms for its commit at the
// median instead of about half the window (a wait of 0.57 ms measured
// with the exact pause; the sender's p50 1.53 ms instead of 2.24 ms).
func (ib *inbox) pause(d time.Duration) bool {
	if d <= exactPause {
		sleepExact(d)
		select {
		case <-ib.quit:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ib.quit:
		return false
	}
}

// drainWith fails batch, taken from the queue, and drains the rest.
func (ib *inbox) drainWith(batch []*writeReq) {
	for _, r := range batch {
		r.err = ErrClosed
		r.finish()
	}
	ib.drain()
}

// drain fails every request still queued when the inbox stops. A final
// pending ack is written and synced so that a clean stop replays as little
// as possible.
func (ib *inbox) drain() {
	for {
		select {
		case r := <-ib.reqs:
			r.err = ErrClosed
			r.finish()
		default:
			if ack := ib.ackTo.Load(); ack > ib.acked {
				if err := ib.write(appendState(nil, ack, ib.nextSeq), true); err == nil {
					ib.acked = ack
				}
			}
			if err := ib.sync(); err != nil {
				ib.log.Warn("webhook inbox: sync on close", "error", err)
			}
			ib.writeIDs(true)
			return
		}
	}
}

// commitBatch writes the new deliveries of batch and the pending ack in one
// write, syncs it when it holds deliveries, and answers batch.
func (ib *inbox) commitBatch(batch []*writeReq) {
	now := ib.now()
	ack := ib.ackTo.Load()
	ib.dmu.Lock()
	seal := ib.sealDue(now)
	ib.dmu.Unlock()
	if len(batch) == 0 && ack <= ib.acked && !seal {
		return
	}
	if seal {
		// A failure keeps the ids in memory; sealing is tried again at
		// the next commit.
		if err := ib.seal(now); err != nil {
			ib.warnEvery("webhook inbox: seal dedup ids", "dir", ib.dir, "error", err)
		}
	}
	startSeq := ib.nextSeq
	buf := ib.buf[:0]
	fresh := ib.fresh[:0]
	accepted := make([]*record, 0, len(batch))
	ib.dmu.Lock()
	for _, r := range batch {
		d := digestOf(r.rec.id)
		if ib.seen(d) {
			r.dup = true
			continue
		}
		// A second copy in the same batch is a duplicate of the first.
		ib.hotAdd(d, r.rec.received)
		fresh = append(fresh, d)
		ib.nextSeq++
		r.rec.seq = ib.nextSeq
		if r.rec.head == nil {
			r.rec.head = appendRecordHead(nil, r.rec)
		}
		at := len(buf)
		buf = appendDelivery(buf, r.rec)
		// The offset in buf; the segment's offset is added once written.
		r.rec.at, r.rec.flen = int64(at), len(buf)-at
		accepted = append(accepted, r.rec)
	}
	ib.dmu.Unlock()
	if ack > ib.acked {
		buf = appendState(buf, ack, ib.nextSeq)
	}
	ib.buf, ib.fresh = buf[:0], fresh[:0]
	if len(accepted) > 0 {
		ib.lastCommit = time.Now()
	}
	base := ib.off
	if len(buf) > 0 {
		if err := ib.write(buf, len(accepted) > 0); err != nil {
			ib.dmu.Lock()
			for _, d := range fresh {
				ib.hotDrop(d)
			}
			ib.dmu.Unlock()
			ib.nextSeq = startSeq
			for _, rec := range accepted {
				rec.at, rec.flen = 0, 0
			}
			ib.fail(batch, fmt.Errorf("store %d deliveries in %s: %w", len(accepted), ib.active.path, err))
			return
		}
	}
	ib.commits.Add(1)
	ib.stored.Add(int64(len(accepted)))
	ib.acked = max(ack, ib.acked)
	for _, rec := range accepted {
		rec.seg, rec.at = ib.active.n, base+rec.at
		ib.active.last = rec.seq
		ib.active.ids = appendSeenID(ib.active.ids, rec.received.UnixNano(), rec.id)
		if rec.headBuf != nil {
			*rec.headBuf = rec.head[:0]
			recordHeads.Put(rec.headBuf)
			rec.headBuf = nil
		}
		rec.head = nil
	}
	// The records are queued before any handler answers, so a delivery
	// answered 2xx is always one Read or Drain can take. Read is woken
	// only after the answers: their 2xx does not wait for it, nor for the
	// stream's own commit that follows it to compete with them for the
	// CPU and the disk. batch's requests belong to their handlers once
	// finished; accepted holds the records.
	if len(accepted) > 0 && ib.onCommit != nil {
		ib.onCommit(accepted)
	}
	for _, r := range batch {
		r.finish()
	}
	if len(accepted) > 0 && ib.onAnswered != nil {
		ib.onAnswered()
	}
	if cap(ib.buf) > 2*maxBatchBytes {
		ib.buf = nil
	}
}

func (ib *inbox) fail(batch []*writeReq, err error) {
	for _, r := range batch {
		r.dup = false
		r.err = err
		r.finish()
	}
}

// write appends buf to the active segment, with an fdatasync when durable.
// On failure nothing of buf stays in the segment: it is cut, and until the
// cut succeeds every write fails.
func (ib *inbox) write(buf []byte, durable bool) error {
	if ib.torn {
		if err := ib.cut(); err != nil {
			return err
		}
	}
	if _, err := ib.f.WriteAt(buf, ib.off); err != nil {
		_ = ib.cut()
		return err
	}
	if durable {
		if err := datasync(ib.f); err != nil {
			_ = ib.cut()
			return err
		}
	}
	ib.off += int64(len(buf))
	ib.unsynced = !durable
	return nil
}

// cut truncates the active segment to its valid frames.
func (ib *inbox) cut() error {
	ib.torn = true
	if err := ib.f.Truncate(ib.off); err != nil {
		return fmt.Errorf("cut a failed write from %s: %w", ib.active.path, err)
	}
	if err := datasync(ib.f); err != nil {
		return fmt.Errorf("cut a failed write from %s: %w", ib.active.path, err)
	}
	ib.torn = false
	return nil
}

// sync makes every frame written to the active segment durable.
func (ib *inbox) sync() error {
	if !ib.unsynced {
		return nil
	}
	if err := datasync(ib.f); err != nil {
		return fmt.Errorf("sync %s: %w", ib.active.path, err)
	}
	ib.unsynced = false
	return nil
}

// maintain starts a new segment when the active one is full, and deletes
// the older segments whose deliveries are all acknowledged, once their ids
// are in the current seen file. A failure is logged and tried again after
// the next commit.
func (ib *inbox) maintain() {
	if !ib.spareBusy && ib.off >= ib.segmentBytes/4 {
		ib.spareBusy = true
		path := segmentPath(ib.dir, ib.active.n+1) + spareSuffix
		size := ib.segmentBytes
		ib.spareWG.Go(func() { ib.spare <- prepareSpare(path, size) })
	}
	if ib.off >= ib.segmentBytes {
		if err := ib.openSegment(ib.active.n + 1); err != nil {
			ib.warnEvery("webhook inbox: start a new segment", "dir", ib.dir, "error", err)
		}
	}
	ib.dedupUpkeep(ib.now())
	done := 0
	for done < len(ib.segs) && ib.segs[done].last <= ib.acked {
		done++
	}
	if done == 0 {
		return
	}
	if err := ib.compact(ib.segs[:done]); err != nil {
		ib.warnEvery("webhook inbox: delete acknowledged segments", "dir", ib.dir, "error", err)
		return
	}
	rest := copy(ib.segs, ib.segs[done:])
	clear(ib.segs[rest:])
	ib.segs = ib.segs[:rest]
}

// warnEvery logs a failure of the writer's upkeep, which is tried again
// after every commit, once a minute at most per message.
func (ib *inbox) warnEvery(msg string, args ...any) {
	ib.warnMu.Lock()
	defer ib.warnMu.Unlock()
	if msg == ib.warnMsg && time.Since(ib.warnAt) < time.Minute {
		return
	}
	ib.warnMsg, ib.warnAt = msg, time.Now()
	ib.log.Warn(msg, args...)
}

// stop stops the writer once it has committed and answered the write in
// progress, bounded by ctx, and leaves the files open for close.
func (ib *inbox) stop(ctx context.Context) error {
	ib.quitMu.Do(func() { close(ib.quit) })
	if !ib.running {
		return nil
	}
	select {
	case <-ib.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop webhook inbox writer: %w", ctx.Err())
	}
}

// close stops the writer (bounded by ctx) and closes the files.
func (ib *inbox) close(ctx context.Context) error {
	if err := ib.stop(ctx); err != nil {
		// The writer is inside a write (a slow disk): let it finish,
		// then release the files.
		go func() {
			<-ib.stopped
			_ = ib.closeFiles()
		}()
		return err
	}
	if !ib.running {
		if err := ib.sync(); err != nil {
			_ = ib.closeFiles()
			return err
		}
	}
	return ib.closeFiles()
}

func (ib *inbox) closeFiles() error {
	var errs []error
	ib.spareWG.Wait()
	ib.removeWG.Wait()
	if ib.spareBusy {
		sp := <-ib.spare
		ib.spareBusy = false
		errs = append(errs, sp.discard())
	}
	if ib.f != nil {
		errs = append(errs, ib.f.Close())
		ib.f = nil
	}
	if ib.seenF != nil {
		errs = append(errs, ib.seenF.Close())
		ib.seenF = nil
	}
	errs = append(errs, ib.rd.close())
	errs = append(errs, ib.closeDedup())
	return errors.Join(errs...)
}
