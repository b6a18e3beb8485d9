package kafka

import (
	"time"

	"github.com/IBM/sarama"
)

// batch is a record batch of one partition, as sarama encodes it, and the
// calls its records belong to. Its records, their headers and the bytes it
// copies live in arenas the batch owns, so that a batch holds a handful of
// allocations whatever its size, and a recycled batch reuses them.
type batch struct {
	rb      sarama.RecordBatch
	n       int32
	firstTS int64 // milliseconds
	maxTS   int64
	created time.Time
	size    int // encoded bytes of the records, counted in producer.buffered
	acks    []batchAck

	hasSeq bool // pid, epoch and seq are set: keep them across retries
	pid    int64
	epoch  int16
	seq    int32

	records arena[sarama.Record]
	headers arena[sarama.RecordHeader]
	hptrs   arena[*sarama.RecordHeader]
	data    arena[byte] // keys, values and headers, copied from the caller
}

// batchOverhead is the size of a record batch without its records: base
// offset (8), length (4), leader epoch (4), magic (1), CRC (4), attributes
// (2), last offset delta (4), first and max timestamps (16), producer id
// (8), producer epoch (2), base sequence (4) and record count (4).
const batchOverhead = 61

// arena hands out runs of T from chunks that never move once handed out,
// so that pointers and slices into them stay valid while the arena grows.
type arena[T any] struct{ buf []T }

// arenaChunk bounds the values of a chunk, beyond which an arena takes
// a new chunk rather than a larger one: a batch spans a few chunks, and a
// recycled batch keeps one of bounded size.
const arenaChunk = 256 << 10

// take returns n zero or reused values of T, contiguous.
func (a *arena[T]) take(n int) []T {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]T, 0, max(n, min(2*cap(a.buf), arenaChunk), 64))
	}
	at := len(a.buf)
	a.buf = a.buf[:at+n]
	return a.buf[at : at+n : at+n]
}

// reset makes the last chunk available again; clear drops the references
// it holds, for arenas of pointers or of values holding them.
func (a *arena[T]) reset(clearValues bool) {
	if clearValues {
		clear(a.buf)
	}
	a.buf = a.buf[:0]
}

// capacity is the number of values the arena's last chunk holds.
func (a *arena[T]) capacity() int { return cap(a.buf) }

// add appends one record to b. Its headers are copied; so are its key and
// value unless shared says they stay unchanged until the batch is
// finished (a payload the caller handed over until its done is called).
func (b *batch) add(key, value []byte, headers []sarama.RecordHeader, ts int64, shared bool) {
	r := &b.records.take(1)[0]
	*r = sarama.Record{
		TimestampDelta: time.Duration(ts-b.firstTS) * time.Millisecond,
		OffsetDelta:    int64(b.n),
		Key:            key,
		Value:          value,
	}
	if !shared {
		r.Key, r.Value = b.copyBytes(key), b.copyBytes(value)
	}
	if len(headers) > 0 {
		hs := b.headers.take(len(headers))
		ptrs := b.hptrs.take(len(headers))
		for i, h := range headers {
			hs[i] = sarama.RecordHeader{Key: b.copyBytes(h.Key), Value: b.copyBytes(h.Value)}
			ptrs[i] = &hs[i]
		}
		r.Headers = ptrs
	}
	b.rb.Records = append(b.rb.Records, r)
	b.n++
	b.maxTS = max(b.maxTS, ts)
}

// copyBytes copies v into the batch's arena; nil stays nil (a null key,
// value or header value).
func (b *batch) copyBytes(v []byte) []byte {
	if v == nil {
		return nil
	}
	dst := b.data.take(len(v))
	copy(dst, v)
	return dst
}

// seal fills in the record batch's header for sending with codec.
func (b *batch) seal(codec sarama.CompressionCodec, level int) {
	b.rb.Version = 2
	b.rb.Codec = codec
	b.rb.CompressionLevel = level
	b.rb.LastOffsetDelta = b.n - 1
	b.rb.FirstTimestamp = time.UnixMilli(b.firstTS)
	b.rb.MaxTimestamp = time.UnixMilli(b.maxTS)
	b.rb.ProducerID = b.pid
	b.rb.ProducerEpoch = b.epoch
	b.rb.FirstSequence = b.seq
}

// varintLen returns the length of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// headersLen returns the encoded size of headers.
func headersLen(headers []sarama.RecordHeader) int {
	n := 0
	for _, h := range headers {
		n += bytesLen(h.Key) + bytesLen(h.Value)
	}
	return n
}

// bytesLen returns the encoded size of varint-length-prefixed bytes; nil
// takes one byte (length -1).
func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// recordLen returns the encoded size of a record (its length prefix
// included) whose nh headers take headerBytes: the producer counts its
// buffer and sizes its batches with it.
func recordLen(offsetDelta int32, tsDelta int64, key []byte, value []byte, nh, headerBytes int) (body, total int) {
	body = 1 + varintLen(tsDelta) + varintLen(int64(offsetDelta)) + varintLen(int64(nh)) + headerBytes + bytesLen(key) + bytesLen(value)
	return body, varintLen(int64(body)) + body
}
