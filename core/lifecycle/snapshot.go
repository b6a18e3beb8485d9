package lifecycle

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
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
	crc := crc32.New(crcTable)
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var buf []byte
	buf = append(buf, snapshotMagic...)
	buf = binary.AppendVarint(buf, h.judged)
	buf = binary.AppendVarint(buf, h.from)
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
	if err := atStep(crash, "writing"); err != nil {
		return err
	}
	var werr error
	t.table.eachSlot(func(_ uint32, s *slot) {
		if werr != nil || (s.head == 0 && s.state == 0) {
			return // an instance added by a batch that was not stored
		}
		id, last := t.table.record(s.ref)
		buf = binary.AppendUvarint(buf[:0], uint64(s.mach))
		buf = append(buf, s.state)
		buf = binary.AppendVarint(buf, s.entered)
		buf = binary.AppendVarint(buf, s.updated)
		buf = binary.AppendVarint(buf, s.head)
		buf = binary.LittleEndian.AppendUint64(buf, s.bloom)
		buf = appendString(buf, id)
		buf = appendString(buf, last)
		_, werr = w.Write(buf)
	})
	if werr != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, werr)
	}
	// The end: a record of entity number len(Machines), then the CRC.
	if _, err := w.Write(binary.AppendUvarint(nil, uint64(len(t.cfg.Machines)))); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	if _, err := f.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("write lifecycle snapshot %s: %w", tmp, err)
	}
	return nil
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

// snapshotReader reads a snapshot, checking its CRC at the end.
type snapshotReader struct {
	r      *bufio.Reader
	crc    hash.Hash32
	names  []string
	states [][]string
	err    error
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	b, err := sr.r.ReadByte()
	if err == nil {
		sr.crc.Write([]byte{b})
	}
	return b, err
}

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
	sr.crc.Write(b)
	return b
}

func (sr *snapshotReader) string() string { return string(sr.bytes(int(sr.uvarint()))) }

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
	sr := &snapshotReader{r: bufio.NewReaderSize(f, 1<<20), crc: crc32.New(crcTable)}
	if string(sr.bytes(len(snapshotMagic))) != snapshotMagic {
		return h, true, fmt.Errorf("read lifecycle snapshot %s: %w: not a snapshot of this version", path, errBadSnapshot)
	}
	h.judged, h.from = sr.varint(), sr.varint()
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
	for sr.err == nil {
		mi := int(sr.uvarint())
		if sr.err != nil || mi == n {
			break
		}
		if mi > n {
			sr.err = errBadSnapshot
			break
		}
		var e snapshotEntry
		e.entity = sr.names[mi]
		st, err := sr.ReadByte()
		if err != nil {
			sr.err = err
			break
		}
		if st > 0 {
			if int(st) > len(sr.states[mi]) {
				sr.err = errBadSnapshot
				break
			}
			e.state = sr.states[mi][st-1]
		}
		e.entered, e.updated, e.head = sr.varint(), sr.varint(), sr.varint()
		if b := sr.bytes(8); b != nil {
			e.bloom = binary.LittleEndian.Uint64(b)
		}
		e.id, e.last = sr.string(), sr.string()
		if sr.err == nil {
			fn(e)
		}
	}
	if sr.err != nil {
		return h, true, fmt.Errorf("read lifecycle snapshot %s: %w: %w", path, errBadSnapshot, sr.err)
	}
	want := sr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil || binary.LittleEndian.Uint32(sum[:]) != want {
		return h, true, fmt.Errorf("read lifecycle snapshot %s: %w: its checksum does not match", path, errBadSnapshot)
	}
	return h, true, nil
}

// snapshotHead returns the latest log sequence of an instance the
// snapshot at path knew (0: none) and the sequence from which the log
// holds events it did not (0 when there is no snapshot to trust).
func snapshotHead(path, entity, id string) (head, from int64) {
	h, _, err := readSnapshot(path, func(e snapshotEntry) {
		if e.entity == entity && e.id == id {
			head = e.head
		}
	})
	if err != nil {
		return 0, 0
	}
	return head, h.from
}
