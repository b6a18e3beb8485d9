package lifecycle

import (
	"encoding/binary"
	"hash/maphash"
)

// table holds the current state of every instance in memory, compactly:
// an open-addressed index of 64-bit words (a 32-bit tag of the instance's
// hash and its slot number) over slots in fixed-size chunks, and the ids
// (the instance's and its last event's) in an arena of fixed-size chunks.
// About 40 bytes of slot, 8 to 16 of index and the two ids per instance;
// nothing is a Go pointer, so the garbage collector does not scan it, and
// growing it never copies a large array (only the index doubles).
// It is not safe for concurrent use.
type table struct {
	seed  maphash.Seed
	index []uint64 // tag<<32 | slot+1; 0 is empty
	n     int      // used slots
	slots [][]slot
	free  []uint32 // slots left by deleted instances
	arena [][]byte
	// garbage counts the arena bytes of records no slot points to; the
	// arena is compacted once it is more than half of it and at least
	// compactAt.
	garbage, compactAt int
	// compactions counts the arena's compactions.
	compactions int
}

// slot is one instance.
type slot struct {
	// entered is the event time (ns) of the event that put it in state;
	// updated is when the tracker last judged an event of it.
	entered, updated int64
	// bloom has two bits set per event id of its timeline (see idBits),
	// so that a redelivered event is looked for in the store only when
	// both of its bits are set.
	bloom uint64
	// head is the log sequence of its latest event; the log links each
	// event to the instance's one before.
	head int64
	// ref is where its id and last event id lie in the arena.
	ref   uint32
	mach  uint16
	state uint8 // 0: no state yet (its first events wait in the window)
	stuck bool
}

const (
	slotChunkBits  = 16
	slotChunk      = 1 << slotChunkBits
	arenaChunkBits = 20
	arenaChunk     = 1 << arenaChunkBits
	// maxRecord bounds an arena record (the two ids); the tracker refuses
	// longer ids (see maxIDLen).
	maxRecord = arenaChunk / 4
)

func newTable() *table {
	return &table{seed: maphash.MakeSeed(), index: make([]uint64, 1024), compactAt: 4 * arenaChunk}
}

func (t *table) hash(mach uint16, id string) uint64 {
	h := maphash.String(t.seed, id)
	return h ^ (uint64(mach)+1)*0x9e3779b97f4a7c15
}

func (t *table) slot(i uint32) *slot { return &t.slots[i>>slotChunkBits][i&(slotChunk-1)] }

// record returns the id and last event id at ref.
func (t *table) record(ref uint32) (id, last string) {
	b := t.arena[ref>>arenaChunkBits][ref&(arenaChunk-1):]
	n, k := binary.Uvarint(b)
	b = b[k:]
	id = string(b[:n])
	b = b[n:]
	m, k := binary.Uvarint(b)
	return id, string(b[k : k+int(m)])
}

// recordLen returns the length of the record at ref, and the offset and
// length of its last event id.
func (t *table) recordLen(ref uint32) (size, lastOff, lastLen int) {
	b := t.arena[ref>>arenaChunkBits][ref&(arenaChunk-1):]
	n, k := binary.Uvarint(b)
	off := k + int(n)
	m, k2 := binary.Uvarint(b[off:])
	return off + k2 + int(m), off + k2, int(m)
}

func (t *table) idEquals(ref uint32, id string) bool {
	b := t.arena[ref>>arenaChunkBits][ref&(arenaChunk-1):]
	n, k := binary.Uvarint(b)
	return int(n) == len(id) && string(b[k:k+int(n)]) == id
}

// put appends a record to the arena and returns its ref.
func (t *table) put(id, last string) uint32 {
	size := binary.MaxVarintLen32*2 + len(id) + len(last)
	if size > maxRecord {
		panic("lifecycle: an id longer than maxIDLen reached the table")
	}
	c := len(t.arena) - 1
	if c < 0 || len(t.arena[c])+size > arenaChunk {
		t.arena = append(t.arena, make([]byte, 0, arenaChunk))
		c++
	}
	b := t.arena[c]
	ref := uint32(c)<<arenaChunkBits | uint32(len(b))
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = binary.AppendUvarint(b, uint64(len(last)))
	b = append(b, last...)
	t.arena[c] = b
	return ref
}

// setLast sets the last event id of slot i, in place when it has the
// length of the one before (event ids mostly have one length).
func (t *table) setLast(i uint32, last string) {
	s := t.slot(i)
	size, off, n := t.recordLen(s.ref)
	if n == len(last) {
		b := t.arena[s.ref>>arenaChunkBits][s.ref&(arenaChunk-1):]
		copy(b[off:], last)
		return
	}
	id, _ := t.record(s.ref)
	s.ref = t.put(id, last)
	t.garbage += size
	t.maybeCompactArena()
}

// maybeCompactArena copies the live records into a new arena once more
// than half of it is garbage.
func (t *table) maybeCompactArena() {
	if t.garbage < t.compactAt || t.garbage*2 < len(t.arena)*arenaChunk {
		return
	}
	old := t.arena
	t.arena, t.garbage = nil, 0
	t.compactions++
	t.eachSlot(func(i uint32, s *slot) {
		b := old[s.ref>>arenaChunkBits][s.ref&(arenaChunk-1):]
		n, k := binary.Uvarint(b)
		id := string(b[k : k+int(n)])
		b = b[k+int(n):]
		m, k := binary.Uvarint(b)
		s.ref = t.put(id, string(b[k:k+int(m)]))
	})
}

// find returns the slot of the instance, and whether it is there.
func (t *table) find(mach uint16, id string) (uint32, bool) {
	h := t.hash(mach, id)
	tag := h >> 32
	mask := uint64(len(t.index) - 1)
	for p := h & mask; ; p = (p + 1) & mask {
		e := t.index[p]
		if e == 0 {
			return 0, false
		}
		if e>>32 == tag {
			i := uint32(e) - 1
			if s := t.slot(i); s.mach == mach && t.idEquals(s.ref, id) {
				return i, true
			}
		}
	}
}

// add adds an instance with no state yet and returns its slot.
func (t *table) add(mach uint16, id string) uint32 { return t.addLast(mach, id, "") }

// addLast adds an instance whose last event is last and returns its slot.
func (t *table) addLast(mach uint16, id, last string) uint32 {
	if (t.n+1)*4 > len(t.index)*3 {
		t.grow()
	}
	var i uint32
	if k := len(t.free); k > 0 {
		i, t.free = t.free[k-1], t.free[:k-1]
	} else {
		i = uint32(t.n)
		if int(i)>>slotChunkBits >= len(t.slots) {
			t.slots = append(t.slots, make([]slot, slotChunk))
		}
	}
	t.n++
	*t.slot(i) = slot{mach: mach, ref: t.put(id, last)}
	t.insertIndex(t.hash(mach, id), i)
	return i
}

func (t *table) insertIndex(h uint64, i uint32) {
	mask := uint64(len(t.index) - 1)
	p := h & mask
	for t.index[p] != 0 {
		p = (p + 1) & mask
	}
	t.index[p] = h>>32<<32 | uint64(i+1)
}

func (t *table) grow() {
	old := t.index
	t.index = make([]uint64, len(old)*2)
	for _, e := range old {
		if e == 0 {
			continue
		}
		i := uint32(e) - 1
		s := t.slot(i)
		id, _ := t.record(s.ref)
		t.insertIndex(t.hash(s.mach, id), i)
	}
}

// remove deletes the instance in slot i.
func (t *table) remove(i uint32) {
	s := t.slot(i)
	id, _ := t.record(s.ref)
	size, _, _ := t.recordLen(s.ref)
	h := t.hash(s.mach, id)
	mask := uint64(len(t.index) - 1)
	p := h & mask
	for uint32(t.index[p]) != i+1 {
		p = (p + 1) & mask
	}
	// Backward-shift deletion keeps every probe sequence unbroken.
	for {
		t.index[p] = 0
		q := p
		for {
			q = (q + 1) & mask
			e := t.index[q]
			if e == 0 {
				*s = slot{}
				t.free = append(t.free, i)
				t.n--
				t.garbage += size
				return
			}
			j := uint32(e) - 1
			sj := t.slot(j)
			jid, _ := t.record(sj.ref)
			home := t.hash(sj.mach, jid) & mask
			// Move e back to p unless its home lies cyclically in (p, q].
			if (q > p && (home <= p || home > q)) || (q < p && home <= p && home > q) {
				t.index[p] = e
				p = q
				break
			}
		}
	}
}

// eachSlot calls fn for every used slot.
func (t *table) eachSlot(fn func(i uint32, s *slot)) {
	for _, e := range t.index {
		if e != 0 {
			i := uint32(e) - 1
			fn(i, t.slot(i))
		}
	}
}

// idBits returns the two bloom bits of an event id. The hash is FNV-1a,
// fixed, since blooms are kept in snapshots across restarts.
func idBits(eventID string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(eventID); i++ {
		h ^= uint64(eventID[i])
		h *= 1099511628211
	}
	return 1<<(h&63) | 1<<((h>>6)&63)
}
