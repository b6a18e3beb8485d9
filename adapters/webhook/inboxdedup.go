package webhook

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// The inbox's side of the dedup index (dedup.go): the hot set in memory,
// the seen files that make it durable, sealing it into runs, and the
// runs' upkeep (expiry and merges).
//
// Every accepted id is durable in one of three places: its segment (until
// the segment is acknowledged and deleted), the current seen file (to
// which a deleted segment's ids are moved), or a run. Sealing writes every
// id of the hot set, which holds those of the seen files, into a run
// before it starts a new seen file and deletes the older ones, so a crash
// at any point finds each id at least once; an id found twice is harmless.

// digest identifies a delivery id in memory: the first 16 bytes of its
// SHA-256, so that the dedup index costs a fixed, pointer-free entry per
// id whatever the id's length (two distinct ids share one with a
// probability of about n²/2¹²⁹).
type digest [16]byte

func digestOf(id string) digest {
	sum := sha256.Sum256([]byte(id))
	return digest(sum[:16])
}

// dedupIndex is the writer's dedup state.
type dedupIndex struct {
	// hotLimit bounds the ids in hot before it is sealed.
	hotLimit int
	hot      map[digest]struct{}
	// hotFirst and hotLast bound the acceptance times in hot.
	hotFirst, hotLast time.Time
	// runs are by newest acceptance, oldest first.
	runs    []*dedupRun
	nextRun uint64
	// cutoff is the acceptance time at and before which ids are
	// forgotten, as of the current commit.
	cutoff time.Time
	block  []byte // scratch for a run's block
	// seenPath is the current seen file (seenF in the inbox).
	seenPath string
	// merged receives the result of the background merge that merging
	// says is running.
	merged  chan mergeResult
	merging bool
	mergeWG sync.WaitGroup
	// frozen is the hot set being sealed into a run by the goroutine that
	// sealing says is running; sealOld are the seen files its run
	// replaces; sealed receives its result.
	frozen                  map[digest]struct{}
	frozenFirst, frozenLast time.Time
	sealing                 bool
	sealOld                 []string
	sealed                  chan sealResult
	sealWG                  sync.WaitGroup
	// runsGen counts the changes to runs; pickedGen and pickedSlot are
	// those of the last search for runs to merge that found none, so that
	// a commit repeats it only once either changed.
	runsGen, pickedGen uint64
	pickedSlot         int64
}

type mergeResult struct {
	run  *dedupRun
	from []*dedupRun
	err  error
}

// sealAge is how long the hot set holds ids at most: a run spans at most
// this much acceptance time before merges.
func (ib *inbox) sealAge() time.Duration { return max(ib.window/16, time.Millisecond) }

// seen reports whether an id of digest d was accepted within the window.
// A run that cannot be read counts as not holding d (a possible duplicate
// emitted rather than a delivery dropped); the failure is logged. Once the
// inbox runs, the caller holds ib.dmu (the runs share one block buffer).
func (ib *inbox) seen(d digest) bool {
	x := &ib.dd
	if _, ok := x.hot[d]; ok {
		return true
	}
	if x.frozenLast.After(x.cutoff) {
		if _, ok := x.frozen[d]; ok {
			return true
		}
	}
	for i := len(x.runs) - 1; i >= 0; i-- {
		r := x.runs[i]
		if !r.last.After(x.cutoff) {
			continue // past the window, deleted at the next upkeep
		}
		ok, err := r.has(&d, x.block)
		if err != nil {
			ib.warnEvery("webhook inbox: dedup lookup", "error", err)
			continue
		}
		if ok {
			return true
		}
	}
	return false
}

// hotAdd puts d, accepted at t, in the hot set.
func (ib *inbox) hotAdd(d digest, t time.Time) {
	x := &ib.dd
	if len(x.hot) == 0 || t.Before(x.hotFirst) {
		x.hotFirst = t
	}
	if len(x.hot) == 0 || t.After(x.hotLast) {
		x.hotLast = t
	}
	x.hot[d] = struct{}{}
}

// hotDrop takes back d, put in the hot set by a commit that failed.
func (ib *inbox) hotDrop(d digest) { delete(ib.dd.hot, d) }

// remember puts an id accepted at t, read back from the files, in the hot
// set; an id older than the window is forgotten.
func (ib *inbox) remember(id string, t time.Time) {
	if t.Add(ib.window).After(ib.now()) {
		ib.hotAdd(digestOf(id), t)
	}
}

// sealDue reports whether the hot set is full or old enough to be sealed.
// It is called first in each commit, with the commit's time, after which
// runs whose ids were all accepted before the window no longer count; it
// installs a finished seal. The caller holds ib.dmu.
func (ib *inbox) sealDue(now time.Time) bool {
	x := &ib.dd
	x.cutoff = now.Add(-ib.window)
	if x.sealing {
		select {
		case m := <-x.sealed:
			ib.installSeal(m)
		default:
		}
	}
	return len(x.hot) >= x.hotLimit || (len(x.hot) > 0 && now.Sub(x.hotFirst) >= ib.sealAge())
}

func (ib *inbox) addRun(r *dedupRun) {
	x := &ib.dd
	i, _ := slices.BinarySearchFunc(x.runs, r.last, func(e *dedupRun, t time.Time) int { return e.last.Compare(t) })
	x.runs = slices.Insert(x.runs, i, r)
	x.runsGen++
}

// seal starts a new seen file and freezes the hot set, which a goroutine
// writes into a run; the writer installs the run at a later upkeep
// (installSeal) and only then deletes the older seen files, whose ids the
// frozen set holds. Until then lookups consult the frozen set. While a
// seal runs, seal does nothing: the hot set grows past its bound meanwhile.
func (ib *inbox) seal(now time.Time) error {
	x := &ib.dd
	ib.dmu.Lock()
	empty := len(x.hot) == 0
	ib.dmu.Unlock()
	if x.sealing || empty {
		return nil
	}
	// The new seen file is started outside the lock (it is synced, with
	// its directory), so that lookups do not wait for the disk.
	old, err := ib.startSeenFile(now)
	if err != nil {
		return fmt.Errorf("seal dedup ids: %w", err)
	}
	ib.dmu.Lock()
	x.frozen, x.frozenFirst, x.frozenLast = x.hot, x.hotFirst, x.hotLast
	x.hot = make(map[digest]struct{}, min(x.hotLimit, 1024))
	ib.dmu.Unlock()
	x.sealing, x.sealOld = true, old
	n := x.nextRun
	x.nextRun++
	dir, frozen, first, last := ib.dir, x.frozen, x.frozenFirst, x.frozenLast
	x.sealWG.Go(func() {
		ds := make([]digest, 0, len(frozen))
		for d := range frozen {
			ds = append(ds, d)
		}
		r, err := writeRun(dir, n, ds, first, last)
		x.sealed <- sealResult{run: r, err: err}
	})
	return nil
}

type sealResult struct {
	run *dedupRun
	err error
}

// installSeal takes the run of a finished seal into the index. On failure
// the frozen ids go back into the hot set, to be sealed again. The caller
// holds ib.dmu.
func (ib *inbox) installSeal(m sealResult) {
	x := &ib.dd
	x.sealing = false
	if m.err != nil {
		ib.warnEvery("webhook inbox: seal dedup ids", "dir", ib.dir, "error", m.err)
		for d := range x.frozen {
			x.hot[d] = struct{}{}
		}
		if len(x.frozen) > 0 {
			if len(x.hot) == len(x.frozen) || x.frozenFirst.Before(x.hotFirst) {
				x.hotFirst = x.frozenFirst
			}
			if x.frozenLast.After(x.hotLast) {
				x.hotLast = x.frozenLast
			}
		}
		x.frozen = nil
		return
	}
	ib.addRun(m.run)
	x.frozen = nil
	ib.removeSeenFiles(x.sealOld)
	x.sealOld = nil
}

// writeHot writes the hot set into a new run at once and empties it, when
// the inbox opens.
func (ib *inbox) writeHot() error {
	x := &ib.dd
	if len(x.hot) == 0 {
		return nil
	}
	ds := make([]digest, 0, len(x.hot))
	for d := range x.hot {
		ds = append(ds, d)
	}
	r, err := writeRun(ib.dir, x.nextRun, ds, x.hotFirst, x.hotLast)
	if err != nil {
		return err
	}
	x.nextRun++
	ib.addRun(r)
	x.hot = make(map[digest]struct{}, min(x.hotLimit, 1024))
	return nil
}

// startSeenFile starts an empty seen file, to which the ids of deleted
// segments go from now on, and returns the older seen files.
func (ib *inbox) startSeenFile(now time.Time) ([]string, error) {
	first, _ := beginFrame(nil, frameSeenGen)
	first = binary.AppendVarint(first, now.UnixNano())
	first = endFrame(first, 0)
	path := seenPath(ib.dir, now)
	for path == ib.dd.seenPath {
		now = now.Add(1)
		path = seenPath(ib.dir, now)
	}
	nums, err := listed(ib.dir, "seen-")
	if err != nil {
		return nil, err
	}
	f, err := createLog(path, first)
	if err != nil {
		return nil, fmt.Errorf("start dedup file: %w", err)
	}
	if ib.seenF != nil {
		if ib.seenUnsynced {
			// Its ids are in the hot set being frozen; until their run
			// is installed, this file is where they are durable.
			if err := datasync(ib.seenF); err != nil {
				f.Close()
				_ = os.Remove(path)
				return nil, fmt.Errorf("sync %s: %w", ib.dd.seenPath, err)
			}
		}
		_ = ib.seenF.Close()
	}
	ib.seenF, ib.seenOff, ib.dd.seenPath = f, int64(len(first)), path
	ib.seenUnsynced = false
	old := make([]string, 0, len(nums))
	for _, n := range nums {
		old = append(old, filepath.Join(ib.dir, fmt.Sprintf("seen-%020d.log", n)))
	}
	return old, nil
}

// removeSeenFiles deletes seen files whose ids runs hold.
func (ib *inbox) removeSeenFiles(paths []string) {
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			ib.log.Warn("webhook inbox: remove sealed dedup file", "file", p, "error", err)
		}
	}
}

// loadSeen loads the runs (deleting those past the window), then the ids
// of the seen files into the hot set, sealing it whenever it is full. The
// seen files of a version that kept every id in memory are read the same
// way. When a single seen file remains unsealed it is opened for
// appending; else a new one starts.
func (ib *inbox) loadSeen() error {
	x := &ib.dd
	if x.hotLimit <= 0 {
		x.hotLimit = defaultHotLimit
	}
	x.hot = make(map[digest]struct{}, min(x.hotLimit, 1024))
	x.block = make([]byte, runBlock*16)
	x.merged = make(chan mergeResult, 1)
	x.sealed = make(chan sealResult, 1)
	nums, err := listRuns(ib.dir)
	if err != nil {
		return err
	}
	now := ib.now()
	for _, n := range nums {
		x.nextRun = max(x.nextRun, n+1)
		r, err := loadRun(ib.dir, n)
		switch {
		case errors.Is(err, errCorruptRun):
			// Its ids are lost to dedup (possible duplicates, never a lost
			// delivery); the file is kept aside for inspection.
			ib.log.Warn("webhook inbox: dedup run unreadable; set aside, its ids are no longer deduplicated", "file", runPath(ib.dir, n), "error", err)
			if err := os.Rename(runPath(ib.dir, n), runPath(ib.dir, n)+".corrupt"); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("load dedup run: %w", err)
		}
		if !r.last.Add(ib.window).After(now) {
			_ = r.f.Close()
			if err := os.Remove(r.path); err != nil {
				return err
			}
			continue
		}
		ib.addRun(r)
	}
	seen, err := listed(ib.dir, "seen-")
	if err != nil {
		return err
	}
	sealed := len(seen) > 1
	var last string
	var end int64
	for _, n := range seen {
		path := filepath.Join(ib.dir, fmt.Sprintf("seen-%020d.log", n))
		first := true
		off, err := readFrames(path, func(p []byte) error {
			if first {
				first = false
				if p[0] != frameSeenGen {
					return errNoSeenGen
				}
				return nil
			}
			if p[0] != frameSeenIDs {
				return nil
			}
			d := decoder{b: p[1:]}
			for len(d.b) > 0 && d.err == nil {
				t := time.Unix(0, d.varint())
				id := d.str()
				if d.err != nil {
					break
				}
				ib.remember(id, t)
				if len(x.hot) >= x.hotLimit {
					sealed = true
					if err := ib.writeHot(); err != nil {
						return err
					}
				}
			}
			if d.err != nil {
				return fmt.Errorf("read %s: %w", path, d.err)
			}
			return nil
		})
		if errors.Is(err, errNoSeenGen) || (err == nil && first) {
			// A seen file whose creation a crash cut: it holds nothing.
			if err := os.Remove(path); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		last, end = path, off
	}
	if sealed || last == "" {
		if err := ib.writeHot(); err != nil {
			return err
		}
		old, err := ib.startSeenFile(now)
		if err != nil {
			return err
		}
		ib.removeSeenFiles(old)
		return nil
	}
	f, err := os.OpenFile(last, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	// Cut a tail a crash left, so that appended frames follow valid ones.
	if err := f.Truncate(end); err != nil {
		f.Close()
		return err
	}
	ib.seenF, ib.seenOff, x.seenPath = f, end, last
	return nil
}

var errNoSeenGen = errors.New("seen file without its first frame")

// readFrames calls fn with the payload of each valid frame of the file at
// path, in a stream, and returns the length of the valid frames.
func readFrames(path string, fn func([]byte) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, runBuffer)
	var off int64
	hdr := make([]byte, frameHeader)
	var p []byte
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return off, nil
		}
		n := binary.LittleEndian.Uint32(hdr)
		if n == 0 || n > maxFrame {
			return off, nil
		}
		if cap(p) < int(n) {
			p = make([]byte, n)
		}
		p = p[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return off, nil
		}
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, nil
		}
		if err := fn(p); err != nil {
			return off, err
		}
		off += frameHeader + int64(n)
	}
}

// dedupUpkeep deletes the runs past the window, installs a finished merge
// and starts the next one. Failures are logged and tried again later.
func (ib *inbox) dedupUpkeep(now time.Time) {
	ib.dmu.Lock()
	defer ib.dmu.Unlock()
	x := &ib.dd
	if x.sealing {
		select {
		case m := <-x.sealed:
			ib.installSeal(m)
		default:
		}
	}
	if x.merging {
		select {
		case m := <-x.merged:
			x.merging = false
			ib.installMerge(m)
		default:
		}
	}
	keep := x.runs[:0]
	for _, r := range x.runs {
		if r.merging || r.last.Add(ib.window).After(now) {
			keep = append(keep, r)
			continue
		}
		_ = r.f.Close()
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			ib.warnEvery("webhook inbox: delete expired dedup run", "file", r.path, "error", err)
		}
	}
	if len(keep) < len(x.runs) {
		x.runsGen++
	}
	clear(x.runs[len(keep):])
	x.runs = keep
	if x.merging {
		return
	}
	slot := now.UnixNano() / max(int64(ib.window/windowSlots), 1)
	if x.runsGen == x.pickedGen && slot == x.pickedSlot {
		return
	}
	from := ib.pickMerge(now)
	if len(from) < 2 {
		x.pickedGen, x.pickedSlot = x.runsGen, slot
		return
	}
	for _, r := range from {
		r.merging = true
	}
	x.merging = true
	n := x.nextRun
	x.nextRun++
	dir := ib.dir
	x.mergeWG.Go(func() {
		r, err := mergeRuns(dir, n, from)
		x.merged <- mergeResult{run: r, from: from, err: err}
	})
}

// installMerge replaces the merged runs with their merge.
func (ib *inbox) installMerge(m mergeResult) {
	x := &ib.dd
	for _, r := range m.from {
		r.merging = false
	}
	if m.err != nil {
		ib.warnEvery("webhook inbox: merge dedup runs", "dir", ib.dir, "error", m.err)
		return
	}
	x.runs = slices.DeleteFunc(x.runs, func(r *dedupRun) bool { return slices.Contains(m.from, r) })
	ib.addRun(m.run)
	for _, r := range m.from {
		_ = r.f.Close()
		if err := os.Remove(r.path); err != nil {
			ib.warnEvery("webhook inbox: delete merged dedup run", "file", r.path, "error", err)
		}
	}
}

// pickMerge chooses runs to merge: every run of a slot of the window that
// is over, or, in the current slot, mergeFanIn runs of one size class
// (sizes within a factor of mergeFanIn), so that each id is rewritten a
// few times only.
func (ib *inbox) pickMerge(now time.Time) []*dedupRun {
	slotLen := max(int64(ib.window/windowSlots), 1)
	cur := now.UnixNano() / slotLen
	bySlot := map[int64][]*dedupRun{}
	var slots []int64
	for _, r := range ib.dd.runs {
		if !r.last.Add(ib.window).After(now) {
			continue // deleted instead
		}
		s := r.last.UnixNano() / slotLen
		if _, ok := bySlot[s]; !ok {
			slots = append(slots, s)
		}
		bySlot[s] = append(bySlot[s], r)
	}
	for _, s := range slots {
		g := bySlot[s]
		if s < cur && len(g) >= 2 {
			return g
		}
		classes := map[int][]*dedupRun{}
		for _, r := range g {
			c := 0
			for n := r.count / int64(max(ib.dd.hotLimit, 1)); n > 0; n /= mergeFanIn {
				c++
			}
			classes[c] = append(classes[c], r)
			if len(classes[c]) >= mergeFanIn {
				return classes[c]
			}
		}
	}
	return nil
}

// closeDedup waits for a running merge and closes the runs. A merge that
// finished is installed; its inputs, if not deleted, are merged again at
// the next open.
func (ib *inbox) closeDedup() error {
	x := &ib.dd
	x.sealWG.Wait()
	ib.dmu.Lock()
	defer ib.dmu.Unlock()
	ib.dclosed = true
	if x.sealing {
		ib.installSeal(<-x.sealed)
	}
	x.mergeWG.Wait()
	if x.merging {
		x.merging = false
		ib.installMerge(<-x.merged)
	}
	var errs []error
	for _, r := range x.runs {
		errs = append(errs, r.f.Close())
	}
	x.runs = nil
	return errors.Join(errs...)
}

// compact moves the ids of acknowledged segments to the current seen file
// and deletes the segments, in the background. The acknowledgement is made
// durable first, so that a crash never finds deliveries missing that it
// would replay.
func (ib *inbox) compact(segs []*segment) error {
	if err := ib.sync(); err != nil {
		return err
	}
	var buf []byte
	for _, s := range segs {
		if len(s.ids) == 0 {
			continue
		}
		var start int
		buf, start = beginFrame(buf, frameSeenIDs)
		buf = append(buf, s.ids...)
		buf = endFrame(buf, start)
	}
	if len(buf) > 0 {
		if _, err := ib.seenF.WriteAt(buf, ib.seenOff); err != nil {
			_ = ib.seenF.Truncate(ib.seenOff)
			return fmt.Errorf("write %s: %w", ib.dd.seenPath, err)
		}
		if err := datasync(ib.seenF); err != nil {
			_ = ib.seenF.Truncate(ib.seenOff)
			return fmt.Errorf("sync %s: %w", ib.dd.seenPath, err)
		}
		ib.seenOff += int64(len(buf))
	}
	paths := make([]string, len(segs))
	for i, s := range segs {
		paths[i] = s.path
		s.ids = nil
	}
	// Their ids are synced in the seen file and their deliveries
	// acknowledged: the files go in the background, since deleting 8 MiB
	// took the writer 2-3 ms (a runtime/trace at 5k deliveries/s), which
	// every delivery waiting for the next commit waited too. One a crash
	// or a failure leaves is loaded at the next open and compacted again.
	ib.removeWG.Go(func() {
		for _, path := range paths {
			if err := removeSegment(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				ib.warnEvery("webhook inbox: delete acknowledged segments", "dir", ib.dir, "error", err)
			}
		}
	})
	return nil
}

// accept puts the id of a delivery the stream acknowledged (AckStream),
// accepted at t, in the hot set at once, so that a retry of it is a
// duplicate from now on, and queues it for the seen file, which the
// writer appends it to in its next write (writeIDs). The caller holds
// ib.dmu and then calls idsAdded.
func (ib *inbox) accept(d digest, id string, t time.Time) {
	ib.hotAdd(d, t)
	ib.ids = appendSeenID(ib.ids, t.UnixNano(), id)
}

// idsAdded wakes the writer for the ids accept queued.
func (ib *inbox) idsAdded() {
	select {
	case ib.idsReady <- struct{}{}:
	default:
	}
}

// writeIDs appends the ids accept queued to the current seen file in one
// frame; with sync, it then makes the seen file durable. A write reaches
// the page cache at once, so a killed process loses none of them; the
// fdatasync waits for the writer's tick (ackDelay) or for close, so that
// an id costs no disk flush of its own: after a crash of the machine,
// the ids of the last fraction of a second may be forgotten, and a
// delivery among them sent again is emitted again, with the same event
// ids. A failed write is logged; its ids stay in memory only.
func (ib *inbox) writeIDs(sync bool) {
	ib.dmu.Lock()
	ids := ib.ids
	ib.ids = nil
	ib.dmu.Unlock()
	if ib.seenF == nil {
		return
	}
	if len(ids) > 0 {
		buf, start := beginFrame(ib.idsBuf[:0], frameSeenIDs)
		buf = append(buf, ids...)
		buf = endFrame(buf, start)
		ib.idsBuf = buf[:0]
		if cap(ib.idsBuf) > 1<<20 {
			ib.idsBuf = nil
		}
		if _, err := ib.seenF.WriteAt(buf, ib.seenOff); err != nil {
			_ = ib.seenF.Truncate(ib.seenOff)
			ib.warnEvery("webhook inbox: record acknowledged delivery ids; they are remembered in memory only until the next seal", "file", ib.dd.seenPath, "error", err)
		} else {
			ib.seenOff += int64(len(buf))
			ib.seenUnsynced = true
		}
	}
	if sync && ib.seenUnsynced {
		if err := datasync(ib.seenF); err != nil {
			ib.warnEvery("webhook inbox: sync acknowledged delivery ids", "file", ib.dd.seenPath, "error", err)
			return
		}
		ib.seenUnsynced = false
	}
}
