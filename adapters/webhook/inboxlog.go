package webhook

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The inbox's files, in the directory inboxDir of the state directory:
//
//   - seg-<n>.log, the segments: the deliveries, in sequence order, and
//     state frames (the sequence acknowledged so far). The newest is the
//     active segment; the others are deleted once every delivery in them is
//     acknowledged, after their delivery ids went to the current seen file.
//   - seen-<start ns>.log, the dedup generations: the delivery ids of
//     deleted segments, each with the time it was accepted. At most two are
//     kept: the current one and the one before; a generation one window old
//     is replaced by a new one and the older file is deleted.
//
// Every file is a sequence of frames: a 4-byte little-endian payload length,
// the CRC-32C of the payload (4 bytes, little-endian), the payload. The
// first payload byte is the frame type. A frame that is short or whose CRC
// does not match ends the file: it is the tail of a write a crash cut, and
// nothing after it was ever answered 2xx (every 2xx follows an fdatasync,
// which covers every byte written before it).
const inboxDir = "webhook-inbox"

// segmentBytes is the size beyond which the active segment is closed and a
// new one started, so that acknowledged deliveries leave the disk soon.
const segmentBytes = 8 << 20

// maxFrame bounds a frame's payload (a delivery is at most 64 MiB of body
// plus its id and meta), so that a corrupt length is not taken for a
// frame.
const maxFrame = 80 << 20

const frameHeader = 8

// Frame types.
const (
	frameDelivery = 1 // seq (8 bytes LE), then the record (appendRecordHead, body)
	frameState    = 2 // uvarint acknowledged sequence, uvarint next sequence floor
	frameSeenGen  = 3 // varint generation start (unix ns); first frame of a seen file
	frameSeenIDs  = 4 // repeated: varint accepted (unix ns), uvarint id length, id
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// beginFrame appends a frame header with a placeholder length and CRC and
// the frame type; endFrame fills them in once the payload is appended.
func beginFrame(b []byte, typ byte) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return b, start
}

func endFrame(b []byte, start int) []byte {
	payload := b[start+frameHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// nextFrame returns the payload of the frame at the start of data and the
// rest; ok is false at the end of the valid frames.
func nextFrame(data []byte) (payload, rest []byte, ok bool) {
	if len(data) < frameHeader {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint32(data)
	if n == 0 || n > maxFrame || uint64(n) > uint64(len(data)-frameHeader) {
		return nil, nil, false
	}
	payload = data[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(data[4:]) {
		return nil, nil, false
	}
	return payload, data[frameHeader+int(n):], true
}

// skipped is a damaged stretch of a segment: bytes that are no valid
// frame, with a valid frame after them, so not the tail of a write a
// crash cut.
type skipped struct {
	at, n int64
}

// scanFrames calls fn with the offset and payload of each valid frame of
// data, a segment's contents, in order. Where a frame is not valid it
// looks for the next valid frame: when there is one, the bytes before it
// are damage (bit rot, a bad sector), passed to fn with that frame as gap,
// and the frames after them are read; when there is none, they are the
// end (the zeros of a preallocated file, the tail of a write a crash
// cut). A frame is taken as valid when its length fits and its CRC-32C
// matches. It returns the damaged stretches.
func scanFrames(data []byte, fn func(at int64, p []byte, gap *skipped) error) (int, error) {
	damaged := 0
	var gap *skipped
	off := 0
	for off < len(data) {
		if p, _, ok := nextFrame(data[off:]); ok {
			if err := fn(int64(off), p, gap); err != nil {
				return damaged, err
			}
			gap = nil
			off += frameHeader + len(p)
			continue
		}
		next := resync(data, off+1)
		if next < 0 {
			break
		}
		damaged++
		gap = &skipped{at: int64(off), n: int64(next - off)}
		off = next
	}
	return damaged, nil
}

// resync returns the first offset from i on where a valid frame starts,
// or -1.
func resync(data []byte, i int) int {
	for ; i+frameHeader < len(data); i++ {
		if data[i] == 0 {
			// A frame's length is not 0, so one of its first four bytes
			// is not: skip a run of zeros (a preallocated file's rest)
			// eight bytes at a time, to three bytes before its end.
			j := i
			for j+8 <= len(data) && binary.LittleEndian.Uint64(data[j:]) == 0 {
				j += 8
			}
			if j-3 > i {
				i = j - 3
			}
			if i+frameHeader >= len(data) {
				break
			}
		}
		n := binary.LittleEndian.Uint32(data[i:])
		if n == 0 || n > maxFrame || uint64(n) > uint64(len(data)-i-frameHeader) {
			continue
		}
		if t := data[i+frameHeader]; t < frameDelivery || t > frameSeenIDs {
			continue
		}
		if _, _, ok := nextFrame(data[i:]); ok {
			return i
		}
	}
	return -1
}

// appendRecordHead encodes what the submitter knows of a delivery before
// its body: accepted time, id and request meta.
func appendRecordHead(b []byte, r *record) []byte {
	b = binary.AppendVarint(b, r.received.UnixNano())
	b = appendString(b, r.id)
	m := &r.meta
	b = appendString(b, m.Method)
	b = appendString(b, m.Path)
	b = appendString(b, m.RemoteAddr)
	b = appendString(b, m.ContentType)
	b = appendStringMap(b, m.Headers)
	b = appendStringMap(b, m.Query)
	return appendStringMap(b, m.PathParams)
}

// appendDelivery appends the frame of a delivery whose head is encoded.
func appendDelivery(b []byte, r *record) []byte {
	b, start := beginFrame(b, frameDelivery)
	b = binary.LittleEndian.AppendUint64(b, r.seq)
	b = append(b, r.head...)
	b = binary.AppendUvarint(b, uint64(len(r.body)))
	b = append(b, r.body...)
	return endFrame(b, start)
}

func appendState(b []byte, acked, next uint64) []byte {
	b, start := beginFrame(b, frameState)
	b = binary.AppendUvarint(b, acked)
	b = binary.AppendUvarint(b, next)
	return endFrame(b, start)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStringMap(b []byte, m map[string]any) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for k, v := range m {
		s, _ := v.(string)
		b = appendString(b, k)
		b = appendString(b, s)
	}
	return b
}

// appendSeenID appends one id of a seen-ids payload.
func appendSeenID(b []byte, accepted int64, id string) []byte {
	b = binary.AppendVarint(b, accepted)
	return appendString(b, id)
}

// decoder reads the fields of a payload.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated field")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	f := d.b[:n:n]
	d.b = d.b[n:]
	return f
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) stringMap() map[string]any {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	m := make(map[string]any, n)
	for range n {
		k := d.str()
		m[k] = d.str()
	}
	return m
}

// decodeDelivery reads a delivery frame's payload (after its type byte).
func decodeDelivery(p []byte) (*record, error) {
	if len(p) < 8 {
		return nil, errTruncated
	}
	r := &record{seq: binary.LittleEndian.Uint64(p)}
	d := decoder{b: p[8:]}
	r.received = time.Unix(0, d.varint()).UTC()
	r.id = d.str()
	r.meta.Method = d.str()
	r.meta.Path = d.str()
	r.meta.RemoteAddr = d.str()
	r.meta.ContentType = d.str()
	r.meta.Headers = d.stringMap()
	r.meta.Query = d.stringMap()
	r.meta.PathParams = d.stringMap()
	r.body = d.bytes()
	if d.err != nil {
		return nil, fmt.Errorf("delivery at sequence %d: %w", r.seq, d.err)
	}
	return r, nil
}

// segment is one segment file as the writer tracks it.
type segment struct {
	n    uint64 // its number, in its name
	path string
	// last is the highest delivery sequence it holds, 0 when none.
	last uint64
	// floor is the sequence given last when the segment was started, from
	// its first frame (its state); floored says there was one.
	floor   uint64
	floored bool
	// ids is the seen-ids payload of its deliveries, written to the
	// current seen file before the segment is deleted.
	ids []byte
}

// listed returns the numbers of dir's files named prefix<n>.log, ascending.
func listed(dir, prefix string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, prefix), ".log"), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func segmentPath(dir string, n uint64) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%020d.log", n))
}

func seenPath(dir string, start time.Time) string {
	return filepath.Join(dir, fmt.Sprintf("seen-%020d.log", start.UnixNano()))
}

// createLog creates a new log file holding first, makes it and its
// directory entry durable, and returns it open for appending.
func createLog(path string, first []byte) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(first); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// syncDir makes the creation or removal of dir's entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// spareSuffix ends the name of a segment file being preallocated.
const spareSuffix = ".spare"

// spareFile is a segment file filled with zeros ahead of its use, so that
// the fdatasync of each group commit writes data only: a file that grows
// makes every fdatasync also commit the file system's journal (its size
// and extents), which costs about as much CPU again and several times the
// wall time.
type spareFile struct {
	f    *os.File
	path string
	err  error
}

// prepareSpare creates path holding size zero bytes, synced.
func prepareSpare(path string, size int64) spareFile {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return spareFile{err: err}
	}
	zeros := make([]byte, 256<<10)
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
	}
	if err == nil {
		err = datasync(f)
	}
	if err != nil {
		f.Close()
		_ = os.Remove(path)
		return spareFile{err: err}
	}
	return spareFile{f: f, path: path}
}

// use renames the spare to path with first at its start, durably, and
// returns it; on failure it returns a nil file and the spare is gone.
func (s spareFile) use(path string, first []byte) (*os.File, error) {
	if s.err != nil {
		return nil, s.err
	}
	err := os.Rename(s.path, path)
	if err == nil {
		_, err = s.f.WriteAt(first, 0)
	}
	if err == nil {
		err = datasync(s.f)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		s.f.Close()
		_ = os.Remove(s.path)
		_ = os.Remove(path)
		return nil, err
	}
	return s.f, nil
}

// discard deletes an unused spare.
func (s spareFile) discard() error {
	if s.err != nil {
		return nil
	}
	s.f.Close()
	return os.Remove(s.path)
}

// removeSpares deletes the spares a stop left in dir.
func removeSpares(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), spareSuffix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
