package poll

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/tributary/tributary/core"
)

// scanPage is how many index entries one delete-detection step reads.
const scanPage = 1000

// snapshotPos is the JSON form of a snapshot-mode position: the key, its
// version number in the index and its content hash ("" when deleted).
func appendSnapshotPos(b []byte, key string, ver int64, h string) []byte {
	b = append(b, `{"k":`...)
	b = append(b, key...)
	b = append(b, `,"v":`...)
	b = strconv.AppendInt(b, ver, 10)
	b = append(b, `,"h":"`...)
	b = append(b, h...)
	return append(b, `"}`...)
}

// overlayEntry is a snapshot-mode key whose newest state is not committed.
type overlayEntry struct {
	hash    []byte
	ver     int64
	refs    int
	seenRun int64
}

// base is the newest known state of a key.
type base struct {
	hash []byte
	ver  int64
	ok   bool
}

// snapshotRun is one snapshot-mode run: what it knew when it started and
// the buffers its pages reuse.
type snapshotRun struct {
	s   *Source
	st  *state
	rt  time.Time
	seq int64
	// fresh is true when the index was empty and nothing was pending at
	// the start: every key is new, and nothing can be deleted.
	fresh bool
	// stale are the keys pending from earlier runs when this one started.
	// They may be committed while the run reads ahead in the index, so
	// they are always looked up, after the overlay.
	stale map[string]struct{}
	cur   *indexCursor
	h     *hasher
	pos   []byte
	n     int // records read
	// handled are the keys whose deletes came from the overlay.
	handled map[string]bool

	// The state of one page, reused.
	keys  []string
	sums  [][16]byte
	need  []string
	miss  []string
	bases map[string]base
	found map[string]indexRow
}

// runSnapshot reads the whole set, diffs it against the index and the
// changes not acknowledged yet, then emits deletes for the keys it did not
// see.
func (s *Source) runSnapshot(ctx context.Context, rt time.Time) error {
	r, pendingBefore := s.startSnapshot(rt)
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	// With an empty index and nothing pending, every key is new: a key
	// appears once per run, so the index can only hold keys of this run
	// and neither lookups nor the delete scan can find anything.
	empty, err := r.st.indexEmpty(ctx)
	if err != nil {
		return err
	}
	r.fresh = empty && !pendingBefore
	err = s.fetch(ctx, Request{Mode: ModeSnapshot, RunTime: rt}, func(recs []Record) error {
		return r.page(ctx, recs)
	})
	if err != nil {
		return err
	}
	if err := r.deletePending(ctx); err != nil {
		return err
	}
	if r.fresh {
		return nil
	}
	if err := r.deleteUnseen(ctx); err != nil {
		return err
	}
	return r.st.pruneTombstones(ctx, s.now().Add(-s.cfg.TombstoneTTL).UnixNano())
}

// startSnapshot starts a run at rt: it numbers it, forgets the index rows
// the previous run saw and notes the keys pending from earlier runs. It
// reports whether any were pending.
func (s *Source) startSnapshot(rt time.Time) (*snapshotRun, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runSeq++
	s.running = true
	clear(s.marks)
	stale := make(map[string]struct{}, len(s.overlay))
	for k := range s.overlay {
		stale[k] = struct{}{}
	}
	r := &snapshotRun{
		s: s, st: s.st, rt: rt, seq: s.runSeq, stale: stale,
		cur:     &indexCursor{st: s.st},
		h:       &hasher{},
		handled: map[string]bool{},
		bases:   map[string]base{},
		found:   map[string]indexRow{},
	}
	return r, len(s.overlay) > 0
}

// page diffs one page of records and hands on the changes it finds.
func (r *snapshotRun) page(ctx context.Context, recs []Record) error {
	if err := r.hashPage(recs); err != nil {
		return err
	}
	r.pendingBases()
	if err := r.committedBases(ctx); err != nil {
		return err
	}
	return r.s.send(ctx, r.diff(recs))
}

// hashPage computes the canonical key and content hash of every record.
func (r *snapshotRun) hashPage(recs []Record) error {
	r.keys, r.sums = r.keys[:0], r.sums[:0]
	for i := range recs {
		r.n++
		k, err := canonicalKey(recs[i].Key)
		if err != nil {
			return core.Fatal(fmt.Errorf("record %d: %w", r.n, err))
		}
		r.keys = append(r.keys, k)
		r.sums = append(r.sums, r.h.sum(recs[i].Data))
	}
	return nil
}

// pendingBases takes the base of each key with a pending change from the
// overlay, and lists the others in need. Pending changes come first: once
// a key leaves the overlay its change is committed, so a lookup after this
// point sees it.
func (r *snapshotRun) pendingBases() {
	r.need = r.need[:0]
	clear(r.bases)
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range r.keys {
		if ov, ok := s.overlay[k]; ok {
			ov.seenRun = r.seq
			r.bases[k] = base{hash: ov.hash, ver: ov.ver, ok: true}
		} else {
			r.need = append(r.need, k)
		}
	}
}

// committedBases finds the index rows of the keys in need: the next
// entries of the index cursor when the source keeps its order, a lookup
// for the others.
func (r *snapshotRun) committedBases(ctx context.Context) error {
	clear(r.found)
	r.miss = r.miss[:0]
	if !r.fresh {
		for _, k := range r.need {
			if _, ok := r.stale[k]; !ok {
				row, ok, err := r.cur.match(ctx, k)
				if err != nil {
					return err
				}
				if ok {
					r.found[k] = row
					continue
				}
			}
			r.miss = append(r.miss, k)
		}
	}
	if err := r.st.lookupKeys(ctx, r.miss, r.found); err != nil {
		return err
	}
	// Resynchronise the cursor after keys that left the source or came
	// back in another order.
	for i := len(r.miss) - 1; i >= 0; i-- {
		if row, ok := r.found[r.miss[i]]; ok && row.hash != nil {
			r.cur.seek(row.rid)
			break
		}
	}
	return nil
}

// diff returns the creates and updates of the page: the records whose
// hash differs from their key's base. It marks the index rows seen and
// queues the changes' entries.
func (r *snapshotRun) diff(recs []Record) []core.Change {
	s := r.s
	changes := make([]core.Change, 0, 16)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		k, sum := r.keys[i], r.sums[i]
		b, ok := r.bases[k]
		if !ok {
			if row, ok := r.found[k]; ok {
				s.marks.set(row.rid)
				b = base{hash: row.hash, ver: row.ver, ok: true}
			}
		}
		if b.ok && b.hash != nil && bytes.Equal(b.hash, sum[:]) {
			continue
		}
		op := core.OpCreate
		if b.ok && b.hash != nil {
			op = core.OpUpdate
		}
		ver := b.ver + 1
		hs := append([]byte(nil), sum[:]...)
		r.pos = appendSnapshotPos(r.pos[:0], k, ver, hashText(sum))
		p := s.posArena.copy(r.pos)
		if ov, ok := s.overlay[k]; ok {
			ov.hash, ov.ver = hs, ver
			ov.refs++
			ov.seenRun = r.seq
		} else {
			s.overlay[k] = &overlayEntry{hash: hs, ver: ver, refs: 1, seenRun: r.seq}
		}
		s.fifo = append(s.fifo, pending{pos: p, key: k, hash: hs, ver: ver})
		changes = append(changes, s.change(&recs[i], op, p, r.rt))
	}
	return changes
}

// deletePending emits the deletes of keys pending from earlier runs and
// not seen in this one.
func (r *snapshotRun) deletePending(ctx context.Context) error {
	s := r.s
	var dels []core.Change
	s.mu.Lock()
	for k, ov := range s.overlay {
		if ov.hash == nil || ov.seenRun == r.seq {
			continue
		}
		ov.hash = nil
		ov.ver++
		ov.refs++
		r.handled[k] = true
		dels = append(dels, s.deleteChange(&r.pos, k, ov.ver, r.rt))
	}
	s.mu.Unlock()
	for len(dels) > 0 {
		m := min(len(dels), scanPage)
		if err := s.send(ctx, dels[:m]); err != nil {
			return err
		}
		dels = dels[m:]
	}
	return nil
}

// deleteUnseen emits the deletes of committed keys not seen in this run:
// among the entries the index cursor stepped over and the keys pending at
// the start, or in the whole index when the cursor lost track.
func (r *snapshotRun) deleteUnseen(ctx context.Context) error {
	cands, ranges, ok := r.cur.candidates()
	if !ok {
		ranges = [][2]int64{{-1, math.MaxInt64}}
	} else {
		// Keys pending at the start of the run are read again too: the
		// cursor may have seen them before their changes were committed.
		cands = append(cands, slices.Collect(maps.Keys(r.stale))...)
	}
	if err := r.deleteCandidates(ctx, cands); err != nil {
		return err
	}
	for _, rg := range ranges {
		if err := r.deleteRange(ctx, rg[0], rg[1]); err != nil {
			return err
		}
	}
	return nil
}

// deleteCandidates checks the live index entries of keys, a page at a
// time.
func (r *snapshotRun) deleteCandidates(ctx context.Context, keys []string) error {
	live := map[string]indexRow{}
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), scanPage)]
		keys = keys[len(chunk):]
		_, err := r.checkDeletes(ctx, func() ([]int64, []string, []int64, error) {
			clear(live)
			if err := r.st.lookupKeys(ctx, chunk, live); err != nil {
				return nil, nil, nil, err
			}
			var rids, vers []int64
			var ks []string
			for _, k := range chunk {
				if row, ok := live[k]; ok && row.hash != nil {
					rids, ks, vers = append(rids, row.rid), append(ks, k), append(vers, row.ver)
					delete(live, k) // a key listed twice is checked once
				}
			}
			return rids, ks, vers, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// deleteRange checks the live index entries with row ids in (lo, hi], a
// page at a time.
func (r *snapshotRun) deleteRange(ctx context.Context, lo, hi int64) error {
	after := lo
	for {
		var last int64
		n, err := r.checkDeletes(ctx, func() ([]int64, []string, []int64, error) {
			rids, keys, vers, err := r.st.livePage(ctx, after, hi, scanPage)
			if len(rids) > 0 {
				last = rids[len(rids)-1]
			}
			return rids, keys, vers, err
		})
		if err != nil || n < scanPage {
			return err
		}
		after = last
	}
}

// checkDeletes reads a page of index entries (row ids, keys, versions)
// with read and emits the deletes of those this run did not see. The page
// is read and checked with acknowledgements held off, so that an entry
// read live is still pending (in the overlay) or committed as read when it
// is checked. It returns how many entries read returned.
func (r *snapshotRun) checkDeletes(ctx context.Context, read func() ([]int64, []string, []int64, error)) (int, error) {
	s := r.s
	s.ackMu.Lock()
	rids, keys, vers, err := read()
	if err != nil {
		s.ackMu.Unlock()
		return 0, err
	}
	var changes []core.Change
	s.mu.Lock()
	for i, rid := range rids {
		k := keys[i]
		if s.marks.has(rid) || r.handled[k] {
			continue
		}
		if _, ok := s.overlay[k]; ok {
			continue
		}
		ver := vers[i] + 1
		s.overlay[k] = &overlayEntry{ver: ver, refs: 1, seenRun: r.seq}
		changes = append(changes, s.deleteChange(&r.pos, k, ver, r.rt))
	}
	s.mu.Unlock()
	s.ackMu.Unlock()
	return len(rids), s.send(ctx, changes)
}

// deleteChange builds the delete change of key and queues its entry.
// Callers hold mu.
func (s *Source) deleteChange(buf *[]byte, key string, ver int64, rt time.Time) core.Change {
	*buf = appendSnapshotPos((*buf)[:0], key, ver, "")
	p := s.posArena.copy(*buf)
	s.fifo = append(s.fifo, pending{pos: p, key: key, ver: ver})
	var k map[string]any
	dec := json.NewDecoder(bytes.NewReader([]byte(key)))
	dec.UseNumber()
	_ = dec.Decode(&k)
	return s.change(&Record{Key: k}, core.OpDelete, p, rt)
}

// bitset is a growable set of row ids: the index rows a run saw.
type bitset []uint64

func (b *bitset) set(i int64) {
	w := int(i >> 6)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w-len(*b)+1+len(*b)/4)...)
	}
	(*b)[w] |= 1 << (uint(i) & 63)
}

func (b bitset) has(i int64) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}
