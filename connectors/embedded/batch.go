package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/tributary/tributary/core"
)

// A batch is the blob in the messages column of one row of the batches
// table: the messages of one topic written in one transaction, in offset
// order. Its layout (all integers unsigned varints):
//
//	format   1 byte, batchFormat
//	offsets  1 byte: offsetsContiguous (message i has offset first_offset+i)
//	         or offsetsListed (count-1 gaps follow, each the difference to
//	         the previous message's offset)
//	count    number of messages
//	gaps     only with offsetsListed
//	frames   count times: length of the rest of the frame, then
//	         len(uuid) uuid, the metadata (see appendMetadata), and the
//	         payload, which runs to the end of the frame
//
// The writer always writes contiguous batches; listed offsets only come from
// migrating version 1 files, whose topics interleave in the offset sequence.
// Frames carry their length, so a reader skips to the offset it needs
// without decoding the messages before it.

// batchFormat is the first byte of every batch blob. A new layout gets a new
// value, and readers keep reading the old ones.
const batchFormat = 1

// batchFormatS2 is the first byte of a compressed batch: the rest is the S2
// block encoding (github.com/klauspost/compress/s2) of a batchFormat blob.
// Readers decompress the whole batch, then read it as ever.
const batchFormatS2 = 2

// maxBatchDecoded bounds the decompressed size of a batch: the writer's
// blobs stay near maxBatchBlob, unless one message is larger on its own.
const maxBatchDecoded = 1 << 30

// The ways a batch records its messages' offsets.
const (
	offsetsContiguous = 0
	offsetsListed     = 1
)

// maxBatchBlob is the size at which the writer starts a new row for the
// rest of a topic's messages in one transaction. It bounds what a reader
// holds in memory per row, and what deleting one row reads back; a single
// larger message still gets a row of its own.
const maxBatchBlob = 1 << 20

// errCorrupt reports a batch blob that does not decode.
var errCorrupt = errors.New("corrupt batch")

// uvarintLen returns how many bytes binary.AppendUvarint uses for v.
func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// metadataSize returns how many bytes appendMetadata appends for md, none
// for empty metadata (a row without metadata shares emptyMetadata).
func metadataSize(md map[string]string) int {
	if len(md) == 0 {
		return 0
	}
	n := uvarintLen(uint64(len(md)))
	for k, v := range md {
		n += uvarintLen(uint64(len(k))) + len(k) + uvarintLen(uint64(len(v))) + len(v)
	}
	return n
}

// appendMetadata appends md in the batch encoding: the number of entries,
// then each key and value with its length before it.
func appendMetadata(b []byte, md map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(md)))
	for k, v := range md {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// encodeMetadata returns md in the batch encoding.
func encodeMetadata(md map[string]string) []byte {
	// One pass over the map: CloudEvents metadata usually fits the
	// guess, and append grows the buffer when it does not.
	return appendMetadata(make([]byte, 0, 16+48*len(md)), md)
}

// emptyMetadata is the encoding of no metadata.
var emptyMetadata = []byte{0}

// decodeBinaryMetadata decodes what appendMetadata wrote, which
// metadataLen accepted. Every key and value is a substring of one string,
// so that decoding costs two allocations.
func decodeBinaryMetadata(md []byte) map[string]string {
	n, i := binary.Uvarint(md)
	out := make(map[string]string, n)
	if n == 0 {
		return out
	}
	s := string(md)
	next := func() string {
		l, j := binary.Uvarint(md[i:])
		i += j
		v := s[i : i+int(l)]
		i += int(l)
		return v
	}
	for range n {
		k := next()
		out[k] = next()
	}
	return out
}

// maxFrameBytes bounds the frame of one message. A message larger than
// maxBatchBlob is written alone in its row, and a row must fit in
// SQLite's largest value (SQLITE_MAX_LENGTH, 1,000,000,000 bytes, which
// bounds a whole row too): the bound leaves a megabyte for the batch
// header, the topic and the other columns. Compression is not counted on:
// a message's size, not how well its contents compress, decides whether
// it is stored.
const maxFrameBytes = 999_000_000

// tooLargeError returns the permanent error of message id, whose frame
// takes size bytes.
func tooLargeError(id string, size int) error {
	return core.Permanent(fmt.Errorf("message %q takes %d bytes with its id and metadata, more than the embedded stream stores in one message (%d bytes, under SQLite's largest value); publish smaller events", id, size, maxFrameBytes))
}

// frameSize returns the bytes the frame of r takes in a batch.
func frameSize(r *row) int {
	n := uvarintLen(uint64(len(r.uuid))) + len(r.uuid) + len(r.metadata) + len(r.payload)
	return uvarintLen(uint64(n)) + n
}

// appendFrame appends the frame of r.
func appendFrame(b []byte, r *row) []byte {
	n := uvarintLen(uint64(len(r.uuid))) + len(r.uuid) + len(r.metadata) + len(r.payload)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.AppendUvarint(b, uint64(len(r.uuid)))
	b = append(b, r.uuid...)
	b = append(b, r.metadata...)
	return append(b, r.payload...)
}

// appendBatchHeader appends the header of a contiguous batch of count
// messages.
func appendBatchHeader(b []byte, count int) []byte {
	b = append(b, batchFormat, offsetsContiguous)
	return binary.AppendUvarint(b, uint64(count))
}

// encodeBatch returns the blob of rows whose offsets are offsets, listing
// the offsets unless they are contiguous.
func encodeBatch(rows []row, offsets []int64) []byte {
	n := 2 + uvarintLen(uint64(len(rows)))
	contiguous := true
	for i := 1; i < len(offsets); i++ {
		if offsets[i] != offsets[i-1]+1 {
			contiguous = false
		}
		n += uvarintLen(uint64(offsets[i] - offsets[i-1]))
	}
	for i := range rows {
		n += frameSize(&rows[i])
	}
	b := make([]byte, 0, n)
	if contiguous {
		b = appendBatchHeader(b, len(rows))
	} else {
		b = append(b, batchFormat, offsetsListed)
		b = binary.AppendUvarint(b, uint64(len(rows)))
		for i := 1; i < len(offsets); i++ {
			b = binary.AppendUvarint(b, uint64(offsets[i]-offsets[i-1]))
		}
	}
	for i := range rows {
		b = appendFrame(b, &rows[i])
	}
	return b
}

// stored is a message read back from a batch. Its metadata stays encoded
// (and its payload shared with the batch) until it is delivered.
type stored struct {
	offset   int64
	uuid     string
	metadata []byte
	payload  []byte
}

// decodeBatch appends to out the messages of the batch blob, whose first
// message has offset first, that come after offset after. The messages'
// metadata and payload point into blob.
func decodeBatch(out []stored, blob []byte, first, after int64) ([]stored, error) {
	if len(blob) > 0 && blob[0] == batchFormatS2 {
		n, err := s2.DecodedLen(blob[1:])
		if err != nil || n > maxBatchDecoded {
			return out, fmt.Errorf("%w: bad compressed batch header", errCorrupt)
		}
		raw, err := s2.Decode(make([]byte, n), blob[1:])
		if err != nil {
			return out, fmt.Errorf("%w: compressed batch: %v", errCorrupt, err)
		}
		if len(raw) > 0 && raw[0] == batchFormatS2 {
			return out, fmt.Errorf("%w: compressed batch holds a compressed batch", errCorrupt)
		}
		blob = raw
	}
	if len(blob) < 3 {
		return out, fmt.Errorf("%w: %d bytes", errCorrupt, len(blob))
	}
	if blob[0] != batchFormat {
		return out, fmt.Errorf("%w: format %d, newer than this build reads (%d and %d); upgrade tributary", errCorrupt, blob[0], batchFormat, batchFormatS2)
	}
	kind := blob[1]
	count, i := binary.Uvarint(blob[2:])
	if i <= 0 || count > uint64(len(blob)) {
		return out, fmt.Errorf("%w: bad message count", errCorrupt)
	}
	i += 2
	var gaps []byte // listed offsets, read as the frames are
	switch kind {
	case offsetsContiguous:
	case offsetsListed:
		start := i
		for range max(count, 1) - 1 {
			_, j := binary.Uvarint(blob[i:])
			if j <= 0 {
				return out, fmt.Errorf("%w: bad offset list", errCorrupt)
			}
			i += j
		}
		gaps = blob[start:i]
	default:
		return out, fmt.Errorf("%w: unknown offsets kind %d", errCorrupt, kind)
	}
	off := first
	for n := range count {
		if n > 0 {
			if gaps == nil {
				off++
			} else {
				g, j := binary.Uvarint(gaps)
				gaps = gaps[j:]
				off += int64(g)
			}
		}
		size, j := binary.Uvarint(blob[i:])
		if j <= 0 || size > uint64(len(blob)-i-j) {
			return out, fmt.Errorf("%w: message at offset %d overruns the batch", errCorrupt, off)
		}
		i += j
		frame := blob[i : i+int(size)]
		i += int(size)
		if off <= after {
			continue
		}
		l, j := binary.Uvarint(frame)
		if j <= 0 || l > uint64(len(frame)-j) {
			return out, fmt.Errorf("%w: bad uuid of message at offset %d", errCorrupt, off)
		}
		m := stored{offset: off, uuid: string(frame[j : j+int(l)])}
		rest := frame[j+int(l):]
		mdLen, ok := metadataLen(rest)
		if !ok {
			return out, fmt.Errorf("%w: bad metadata of message at offset %d", errCorrupt, off)
		}
		m.metadata, m.payload = rest[:mdLen:mdLen], rest[mdLen:]
		out = append(out, m)
	}
	if i != len(blob) {
		return out, fmt.Errorf("%w: %d bytes after the last message", errCorrupt, len(blob)-i)
	}
	return out, nil
}

// metadataLen returns the length of the metadata encoding at the start of
// b, checking it.
func metadataLen(b []byte) (int, bool) {
	n, i := binary.Uvarint(b)
	if i <= 0 || n > uint64(len(b)) {
		return 0, false
	}
	for range 2 * n {
		l, j := binary.Uvarint(b[i:])
		if j <= 0 || l > uint64(len(b)-i-j) {
			return 0, false
		}
		i += j + int(l)
	}
	return i, true
}

// eventMetadataMax bounds the bytes appendEventMetadata writes for e.
func eventMetadataMax(e *core.Event) int {
	return 1 + 10*(2+len(core.HeaderPartitionKey)) + len(e.Source) + len(e.SpecVersion) + len(e.Type) +
		len(e.Subject) + len(time.RFC3339Nano) + len(e.DataSchema) + len(e.PartitionKey) + len(e.TraceParent) +
		len(e.TraceState) + len(e.DataContentType) + 10*binary.MaxVarintLen32
}

// appendEventMetadata appends, in the batch encoding, the metadata
// e.ToMessage() would carry: the same entries, so that an event published
// as it is reads back exactly as its message would.
func appendEventMetadata(b []byte, e *core.Event) []byte {
	b = binary.AppendUvarint(b, uint64(e.AttributeCount()))
	e.EachAttribute(func(k, v string, t time.Time) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		if k == core.HeaderTime {
			// The formatted time is shorter than 128 bytes: its length
			// takes one byte, written once the time is.
			at := len(b)
			b = t.UTC().AppendFormat(append(b, 0), time.RFC3339Nano)
			b[at] = byte(len(b) - at - 1)
			return
		}
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	})
	return b
}
