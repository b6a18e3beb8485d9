package lifecycle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// SnapshotFile is the name, in the store's directory, of the snapshot of
// every instance's current state that the tracker writes now and then.
// Start-up loads it and replays the log after it; `tributary trace`
// finds an instance's latest event in it.
//
// It is a binary file: a header, the entities' names and states, one
// record per instance (entity, state, entered, updated, latest log
// sequence, bloom, id, last event id), then a CRC-32C of all that. It is
// written beside as a .tmp file, synced, then renamed over the previous
// one, so that a crash at any step leaves the previous snapshot whole.
const SnapshotFile = "lifecycle-snapshot.bin"

const snapshotMagic = "tributary-lifecycle-snapshot-1\n"

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// snapshotHeader says what a snapshot holds: the state every event judged
// up to judged left the instances in. The events held in the window when
// it was taken, and every later one, have a log sequence of at least from.
type snapshotHeader struct {
	judged, from int64
}

// snapshotEntry is one instance of a snapshot.
type snapshotEntry struct {
	entity, id, state, last string
	entered, updated, head  int64
	bloom                   uint64
}

// writeSnapshot writes the table's instances to path.tmp. The caller
// holds the tracker's lock; syncing and renaming (finishSnapshot) need
// not. crash, when set, is called at each step; an error from it stops
// the writing there, as a crash would (tests set it).
func (t *Tracker) writeSnapshot(path string, h snapshotHeader, crash func(string) error) (err error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("write lifecycle snapshot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write lifecycle snapshot %s: %w", tmp, cerr)
		}
	}()
	// The instances go grouped in buckets of about 64 by a hash of their
	// entity and id, and a table of where each bucket starts follows
	// them: `tributary trace` reads one bucket.
	var keep []uint32
	t.table.eachSlot(func(i uint32, s *slot) {
		if s.head != 0 || s.state != 0 { // else added by a batch that was not stored
			keep = append(keep, i)
		}
	})
	bits := 0
	for len(keep)>>bits > 64 {
		bits++
	}
	starts := make([]uint32, 1<<bits+1)
	buckets := make([]uint32, len(keep))
	for k, i := range keep {
		s := t.table.slot(i)
		id, _ := t.table.record(s.ref)
		buckets[k] = uint32(bucketOf(t.cfg.Machines[s.mach].Name(), id, bits))
		starts[buckets[k]+1]++
	}
	for b := 1; b < len(starts); b++ {
		starts[b] += starts[b-1]
	}
	order := make([]uint32, len(keep))
	next := slices.Clone(starts)
	for k, i := range keep {
		order[next[buckets[k]]] = i
		next[buckets[k]]++
	}
	keep, buckets, next = nil, nil, nil

	crc := crc32.New(crcTable)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var buf []byte
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendVarint(buf, h.judged)
	buf = binary.AppendVarint(buf, h.from)
	buf = binary.AppendUvarint(buf, uint64(bits))
	buf = binary.AppendUvarint(buf, uint64(len(t.cfg.Machines)))
	for mi, m := range t.cfg.Machines {
		buf = appendString(buf, m.Name())
		buf = binary.AppendUvarint(buf, uint64(len(t.states[mi])))
		for _, st := range t.states[mi] {
			buf = appendString(buf, st)
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	off := uint64(len(buf))
	if err := atStep(crash, "writing"); err != nil {
		return err
	}
	table := make([]byte, 0, 8*len(starts))
	for b := range len(starts) - 1 {
		table = binary.LittleEndian.AppendUint64(table, off)
		for _, i := range order[starts[b]:starts[b+1]] {
			s := t.table.slot(i)
			id, last := t.table.record(s.ref)
			buf = binary.AppendUvarint(buf[:0], uint64(s.mach))
			buf = append(buf, s.state)
			buf = binary.AppendVarint(buf, s.entered)
			buf = binary.AppendVarint(buf, s.updated)
			buf = binary.AppendVarint(buf, s.head)
			buf = binary.LittleEndian.AppendUint64(buf, s.bloom)
			buf = appendString(buf, id)
			buf = appendString(buf, last)
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
			}
			off += uint64(len(buf))
		}
	}
	table = binary.LittleEndian.AppendUint64(table, off)
	// The end: a record of entity number len(Machines), the table of
	// buckets, the CRC of all that, and where the table starts.
	end := binary.AppendUvarint(nil, uint64(len(t.cfg.Machines)))
	if _, err := w.Write(append(end, table...)); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	tail := binary.LittleEndian.AppendUint32(nil, crc.Sum32())
	if _, err := f.Write(binary.LittleEndian.AppendUint64(tail, off+uint64(len(end)))); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	return nil
}

// bucketOf returns the bucket of an instance in a snapshot of 2^bits
// buckets: the top bits of the FNV-1a hash of entity, a zero byte and id.
func bucketOf(entity, id string, bits int) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range []string{entity, "\x00", id} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	if bits == 0 {
		return 0
	}
	return h >> (64 - bits)
}

// finishSnapshot syncs path.tmp and renames it over path.
func finishSnapshot(path string, crash func(string) error) error {
	tmp := path + ".tmp"
	if err := atStep(crash, "written"); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write lifecycle snapshot: %w", err)
	}
	if err := atStep(crash, "renamed"); err != nil {
		return err
	}
	if err := syncFile(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", path, err)
	}
	return nil
}

func atStep(crash func(string) error, name string) error {
	if crash == nil {
		return nil
	}
	return crash(name)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// removeTemp removes what a snapshot interrupted by a crash left.
func removeTemp(path string) error {
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove unfinished lifecycle snapshot: %w", err)
	}
	return nil
}

// errBadSnapshot marks a snapshot that cannot be read.
var errBadSnapshot = errors.New("unreadable lifecycle snapshot")

// snapshotReader reads a snapshot's header and instances.
type snapshotReader struct {
	r      *bufio.Reader
	names  []string
	states [][]string
	err    error
}

func (sr *snapshotReader) ReadByte() (byte, error) { return sr.r.ReadByte() }

func (sr *snapshotReader) uvarint() uint64 {
	if sr.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(sr)
	sr.err = err
	return v
}

func (sr *snapshotReader) varint() int64 {
	if sr.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(sr)
	sr.err = err
	return v
}

func (sr *snapshotReader) bytes(n int) []byte {
	if sr.err != nil {
		return nil
	}
	if n > maxRecord {
		sr.err = errBadSnapshot
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.r, b); err != nil {
		sr.err = err
		return nil
	}
	return b
}

func (sr *snapshotReader) string() string { return string(sr.bytes(int(sr.uvarint()))) }

// header reads a snapshot's header, up to its first instance; the
// number of bucket bits follows the header.
func (sr *snapshotReader) header() (h snapshotHeader, bits int) {
	if string(sr.bytes(len(snapshotMagic))) != snapshotMagic {
		sr.err = errors.New("not a snapshot of this version")
		return h, 0
	}
	h.judged, h.from = sr.varint(), sr.varint()
	bits = int(sr.uvarint())
	if bits > 32 {
		sr.err = errBadSnapshot
	}
	n := int(sr.uvarint())
	for range n {
		if sr.err != nil {
			break
		}
		sr.names = append(sr.names, sr.string())
		k := int(sr.uvarint())
		var sts []string
		for range k {
			if sr.err != nil {
				break
			}
			sts = append(sts, sr.string())
		}
		sr.states = append(sr.states, sts)
	}
	return h, bits
}

// entry reads the next instance; ok is false at the end or on an error.
func (sr *snapshotReader) entry() (e snapshotEntry, ok bool) {
	mi := int(sr.uvarint())
	if sr.err != nil || mi == len(sr.names) {
		return e, false
	}
	if mi > len(sr.names) {
		sr.err = errBadSnapshot
		return e, false
	}
	e.entity = sr.names[mi]
	st, err := sr.ReadByte()
	if err != nil {
		sr.err = err
		return e, false
	}
	if st > 0 {
		if int(st) > len(sr.states[mi]) {
			sr.err = errBadSnapshot
			return e, false
		}
		e.state = sr.states[mi][st-1]
	}
	e.entered, e.updated, e.head = sr.varint(), sr.varint(), sr.varint()
	if b := sr.bytes(8); b != nil {
		e.bloom = binary.LittleEndian.Uint64(b)
	}
	e.id, e.last = sr.string(), sr.string()
	return e, sr.err == nil
}

// readSnapshot calls fn with each instance of the snapshot at path and
// returns its header; found is false when there is none. fn is called
// before the CRC at the end is checked: a caller starts afresh on an
// error.
func readSnapshot(path string, fn func(snapshotEntry)) (h snapshotHeader, found bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("read lifecycle snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return h, true, fmt.Errorf("read lifecycle snapshot: %w", err)
	}
	// The CRC covers all but the last 12 bytes (itself and where the
	// table of buckets starts); it is summed as the file is read.
	crc := crc32.New(crcTable)
	sr := &snapshotReader{r: bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, fi.Size()-12), crc), 1<<20)}
	h, bits := sr.header()
	for sr.err == nil {
		e, ok := sr.entry()
		if !ok {
			break
		}
		fn(e)
	}
	if sr.err == nil {
		// The table of buckets.
		if n, err := io.Copy(io.Discard, sr.r); err != nil || n != 8*(1<<bits+1) {
			sr.err = errors.Join(errBadSnapshot, err)
		}
	}
	if sr.err != nil {
		return h, true, fmt.Errorf("read lifecycle snapshot %s: %w: %w", path, errBadSnapshot, sr.err)
	}
	var sum [4]byte
	if _, err := f.ReadAt(sum[:], fi.Size()-12); err != nil || binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return h, true, fmt.Errorf("read lifecycle snapshot %s: %w: its checksum does not match", path, errBadSnapshot)
	}
	return h, true, nil
}

// snapshotHead returns the latest log sequence of an instance the
// snapshot at path knew (0: none) and the sequence from which the log
// holds events it did not (0 when there is no snapshot to trust). It
// reads the header, the footer and the instance's bucket.
func snapshotHead(path, entity, id string) (head, from int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sr := &snapshotReader{r: bufio.NewReader(f)}
	h, bits := sr.header()
	fi, err := f.Stat()
	if sr.err != nil || err != nil || fi.Size() < 12 {
		return 0, 0
	}
	var foot [16]byte
	if _, err := f.ReadAt(foot[:8], fi.Size()-8); err != nil {
		return 0, 0
	}
	table := int64(binary.LittleEndian.Uint64(foot[:8]))
	b := int64(bucketOf(entity, id, bits))
	if _, err := f.ReadAt(foot[:], table+8*b); err != nil {
		return 0, 0
	}
	start, end := int64(binary.LittleEndian.Uint64(foot[:8])), int64(binary.LittleEndian.Uint64(foot[8:]))
	if start > end || end > table {
		return 0, 0
	}
	br := &snapshotReader{r: bufio.NewReader(io.NewSectionReader(f, start, end-start)), names: sr.names, states: sr.states}
	for {
		e, ok := br.entry()
		if !ok {
			break
		}
		if e.entity == entity && e.id == id {
			return e.head, h.from
		}
	}
	if br.err != nil && !errors.Is(br.err, io.EOF) {
		return 0, 0
	}
	return 0, h.from
}
