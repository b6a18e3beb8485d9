package poll

import (
	"bytes"
	"context"
	"crypto/sha256"
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

// cursorPos is the JSON form of a cursor-mode position.
type cursorPos struct {
	C json.RawMessage `json:"c"`
	K json.RawMessage `json:"k"`
	H string          `json:"h"`
}

func (h *hasher) appendCursorPos(b []byte, c cval, kind CursorKind, key []byte, sum [16]byte) []byte {
	b = append(b, `{"c":`...)
	if kind == CursorTime {
		// Usually the time of one of the record's fields, just hashed.
		b = append(b, '"')
		b = h.appendTime(b, time.Unix(0, c.i))
		b = append(b, '"')
	} else {
		b = c.appendJSON(b, kind)
	}
	b = append(b, `,"k":`...)
	b = append(b, key...)
	b = append(b, `,"h":"`...)
	b = appendHashText(b, sum)
	return append(b, `"}`...)
}

func decodeCursorPos(p core.Position, kind CursorKind) (cval, error) {
	if p.Version != 1 {
		return cval{}, fmt.Errorf("unknown position version %d", p.Version)
	}
	var cp cursorPos
	if err := json.Unmarshal(p.Data, &cp); err != nil {
		return cval{}, err
	}
	if len(cp.C) == 0 {
		return cval{}, fmt.Errorf("position has no cursor")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(cp.C))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return cval{}, err
	}
	return normCursor(kind, v)
}

// seenID identifies a record read in cursor mode: SHA-256 of its key,
// cursor and content hash. h's buffer is reused.
func (h *hasher) seenID(key []byte, c cval, sum [16]byte) [16]byte {
	b := append(h.buf[:0], key...)
	b = append(b, 0)
	b = strconv.AppendInt(b, c.i, 10)
	b = append(b, 0)
	b = append(b, c.s...)
	b = append(b, 0)
	b = append(b, sum[:]...)
	h.buf = b
	s := sha256.Sum256(b)
	var out [16]byte
	copy(out[:], s[:16])
	return out
}

// runCursor reads the records at or after the watermark minus the
// look-back window and emits those not seen yet.
func (s *Source) runCursor(ctx context.Context, rt time.Time) error {
	kind := s.cfg.Cursor
	req := Request{Mode: ModeCursor, RunTime: rt}
	s.mu.Lock()
	if s.hasMark {
		req.Cursor = s.lowerBound(s.mark).value(kind)
	}
	s.mu.Unlock()
	h := &hasher{}
	var pos, keyBuf []byte
	n := 0
	// The seen set is pruned during the run as the watermark climbs, so
	// that it holds about one look-back window of entries, not the run.
	pruneAt := 2*len(s.seen) + 4096
	err := s.fetch(ctx, req, func(recs []Record) error {
		changes := make([]core.Change, 0, len(recs))
		s.mu.Lock()
		for i := range recs {
			r := &recs[i]
			n++
			c, err := normCursor(kind, r.Cursor)
			if err != nil {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d (key %v): %w", n, r.Key, err))
			}
			key, err := h.appendKey(keyBuf[:0], r.Key)
			keyBuf = key
			if err != nil {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d: %w", n, err))
			}
			sum := h.sum(r.Data)
			id := h.seenID(key, c, sum)
			// A record above every seen entry is new, without a lookup.
			if s.hasSeenMax && !s.seenMax.less(c, kind) {
				if _, dup := s.seen[id]; dup {
					continue
				}
			}
			s.seen[id] = c
			if !s.hasSeenMax || s.seenMax.less(c, kind) {
				s.seenMax, s.hasSeenMax = c, true
			}
			if !s.hasMark || s.mark.less(c, kind) {
				s.mark, s.hasMark = c, true
			}
			pos = h.appendCursorPos(pos[:0], c, kind, key, sum)
			p := s.posArena.copy(pos)
			s.fifo = append(s.fifo, pending{pos: p, id: id, c: c})
			changes = append(changes, s.change(r, core.OpUpdate, p, rt))
		}
		if len(s.seen) >= pruneAt {
			s.pruneSeen()
			pruneAt = 2*len(s.seen) + 4096
		}
		s.mu.Unlock()
		return s.send(ctx, changes)
	})
	s.mu.Lock()
	s.pruneSeen()
	s.mu.Unlock()
	return err
}

// pruneSeen drops the seen entries below the look-back window of the
// watermark: no later read returns them. Callers hold mu.
func (s *Source) pruneSeen() {
	if !s.hasMark {
		return
	}
	kind := s.cfg.Cursor
	lower := s.lowerBound(s.mark)
	for id, c := range s.seen {
		if c.less(lower, kind) {
			delete(s.seen, id)
		}
	}
}

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

// base is the newest known state of a key.
type base struct {
	hash []byte
	ver  int64
	ok   bool
}

// runSnapshot reads the whole set, diffs it against the index and the
// changes not acknowledged yet, then emits deletes for the keys it did not
// see.
func (s *Source) runSnapshot(ctx context.Context, rt time.Time) error {
	s.mu.Lock()
	s.runSeq++
	seq := s.runSeq
	s.running = true
	clear(s.marks)
	st := s.st
	pendingBefore := len(s.overlay) > 0
	// Keys pending from earlier runs may be committed while the run reads
	// ahead in the index: they are always looked up, after the overlay.
	stale := make(map[string]struct{}, len(s.overlay))
	for k := range s.overlay {
		stale[k] = struct{}{}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	// With an empty index and nothing pending, every key is new: a key
	// appears once per run, so the index can only hold keys of this run
	// and neither lookups nor the delete scan can find anything.
	fresh, err := st.indexEmpty(ctx)
	if err != nil {
		return err
	}
	fresh = fresh && !pendingBefore
	h := &hasher{}
	var (
		keys  []string
		sums  [][16]byte
		need  []string
		miss  []string
		cur   = &indexCursor{st: st}
		bases = map[string]base{}
		found = map[string]indexRow{}
		pos   []byte
		n     int
	)
	err = s.fetch(ctx, Request{Mode: ModeSnapshot, RunTime: rt}, func(recs []Record) error {
		keys, sums, need = keys[:0], sums[:0], need[:0]
		clear(bases)
		clear(found)
		for i := range recs {
			n++
			k, err := canonicalKey(recs[i].Key)
			if err != nil {
				return core.Fatal(fmt.Errorf("record %d: %w", n, err))
			}
			keys = append(keys, k)
			sums = append(sums, h.sum(recs[i].Data))
		}
		// Pending changes first: once a key leaves the overlay its change
		// is committed, so a lookup after this point sees it.
		s.mu.Lock()
		for _, k := range keys {
			if ov, ok := s.overlay[k]; ok {
				ov.seenRun = seq
				bases[k] = base{hash: ov.hash, ver: ov.ver, ok: true}
			} else {
				need = append(need, k)
			}
		}
		s.mu.Unlock()
		miss = miss[:0]
		if !fresh {
			for _, k := range need {
				if _, ok := stale[k]; !ok {
					row, ok, err := cur.match(ctx, k)
					if err != nil {
						return err
					}
					if ok {
						found[k] = row
						continue
					}
				}
				miss = append(miss, k)
			}
		}
		if err := st.lookupKeys(ctx, miss, found); err != nil {
			return err
		}
		// Resynchronise the cursor after keys that left the source or
		// came back in another order.
		for i := len(miss) - 1; i >= 0; i-- {
			if row, ok := found[miss[i]]; ok && row.hash != nil {
				cur.seek(row.rid)
				break
			}
		}
		changes := make([]core.Change, 0, 16)
		s.mu.Lock()
		for i := range recs {
			k, sum := keys[i], sums[i]
			b, ok := bases[k]
			if !ok {
				if row, ok := found[k]; ok {
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
			pos = appendSnapshotPos(pos[:0], k, ver, hashText(sum))
			p := s.posArena.copy(pos)
			if ov, ok := s.overlay[k]; ok {
				ov.hash, ov.ver = hs, ver
				ov.refs++
				ov.seenRun = seq
			} else {
				s.overlay[k] = &overlayEntry{hash: hs, ver: ver, refs: 1, seenRun: seq}
			}
			s.fifo = append(s.fifo, pending{pos: p, key: k, hash: hs, ver: ver})
			changes = append(changes, s.change(&recs[i], op, p, rt))
		}
		s.mu.Unlock()
		return s.send(ctx, changes)
	})
	if err != nil {
		return err
	}
	// Deletes of keys pending from earlier runs and not seen in this one.
	handled := map[string]bool{}
	var dels []core.Change
	s.mu.Lock()
	for k, ov := range s.overlay {
		if ov.hash == nil || ov.seenRun == seq {
			continue
		}
		ov.hash = nil
		ov.ver++
		ov.refs++
		handled[k] = true
		dels = append(dels, s.deleteChange(&pos, k, ov.ver, rt))
	}
	s.mu.Unlock()
	for len(dels) > 0 {
		m := min(len(dels), scanPage)
		if err := s.send(ctx, dels[:m]); err != nil {
			return err
		}
		dels = dels[m:]
	}
	if fresh {
		return nil
	}
	// Deletes of committed keys not seen in this run. Each page of index
	// entries is read and checked with acknowledgements held off, so that
	// an entry read live is still pending (in the overlay) or committed as
	// read when it is checked.
	check := func(read func() ([]int64, []string, []int64, error)) (int, error) {
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
			if s.marks.has(rid) || handled[k] {
				continue
			}
			if _, ok := s.overlay[k]; ok {
				continue
			}
			ver := vers[i] + 1
			s.overlay[k] = &overlayEntry{ver: ver, refs: 1, seenRun: seq}
			changes = append(changes, s.deleteChange(&pos, k, ver, rt))
		}
		s.mu.Unlock()
		s.ackMu.Unlock()
		return len(rids), s.send(ctx, changes)
	}
	scan := func(lo, hi int64) error {
		after := lo
		for {
			var last int64
			n, err := check(func() ([]int64, []string, []int64, error) {
				rids, keys, vers, err := st.livePage(ctx, after, hi, scanPage)
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
	cands, ranges, ok := cur.candidates()
	if !ok {
		ranges = [][2]int64{{-1, math.MaxInt64}}
	} else {
		// Keys pending at the start of the run are read again too: the
		// cursor may have seen them before their changes were committed.
		cands = append(cands, slices.Collect(maps.Keys(stale))...)
	}
	live := map[string]indexRow{}
	for len(cands) > 0 {
		chunk := cands[:min(len(cands), scanPage)]
		cands = cands[len(chunk):]
		_, err := check(func() ([]int64, []string, []int64, error) {
			clear(live)
			if err := st.lookupKeys(ctx, chunk, live); err != nil {
				return nil, nil, nil, err
			}
			var rids, vers []int64
			var ks []string
			for _, k := range chunk {
				if r, ok := live[k]; ok && r.hash != nil {
					rids, ks, vers = append(rids, r.rid), append(ks, k), append(vers, r.ver)
					delete(live, k) // a key listed twice is checked once
				}
			}
			return rids, ks, vers, nil
		})
		if err != nil {
			return err
		}
	}
	for _, r := range ranges {
		if err := scan(r[0], r[1]); err != nil {
			return err
		}
	}
	return st.pruneTombstones(ctx, s.now().Add(-s.cfg.TombstoneTTL).UnixNano())
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

// runEach emits every record the fetcher returns, at the fetcher's
// positions.
func (s *Source) runEach(ctx context.Context, rt time.Time) error {
	s.mu.Lock()
	after := s.after
	s.mu.Unlock()
	n := 0
	return s.fetch(ctx, Request{Mode: ModeEach, RunTime: rt, After: after}, func(recs []Record) error {
		changes := make([]core.Change, 0, len(recs))
		s.mu.Lock()
		for i := range recs {
			r := &recs[i]
			n++
			if r.ID == "" {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d has no ID: a Fetcher in each mode must name every record's position", n))
			}
			p := s.posArena.copyString(r.ID)
			s.fifo = append(s.fifo, pending{pos: p, done: r.Done})
			changes = append(changes, s.change(r, core.OpCreate, p, rt))
		}
		s.mu.Unlock()
		return s.send(ctx, changes)
	})
}
