package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"time"

	"github.com/IBM/sarama"
)

// The Kafka protocol as the producer speaks it: produce requests (version 7,
// which every broker from 2.1 on accepts) carrying record batches of the
// version 2 format, and SASL PLAIN authentication. Everything else (metadata,
// producer ids, topics) goes through sarama's client.

// API keys and versions of the requests the producer sends itself.
const (
	apiProduce              int16 = 0
	apiSASLHandshake        int16 = 17
	apiSASLAuthenticate     int16 = 36
	produceVersion          int16 = 7
	saslHandshakeVersion    int16 = 1
	saslAuthenticateVersion int16 = 0
)

// batchOverhead is the size of a record batch without its records: base
// offset (8), length (4), leader epoch (4), magic (1), CRC (4), attributes
// (2), last offset delta (4), first and max timestamps (16), producer id
// (8), producer epoch (2), base sequence (4) and record count (4).
const batchOverhead = 61

// castagnoli is the CRC-32C table record batches are checksummed with.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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

// appendVarintString appends s as varint-length-prefixed bytes.
func appendVarintString(dst []byte, s string) []byte {
	dst = binary.AppendVarint(dst, int64(len(s)))
	return append(dst, s...)
}

// appendVarintBytes appends b as varint-length-prefixed bytes; nil is
// written as length -1 (null).
func appendVarintBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// recordLen returns the encoded size of a record (its length prefix
// included) whose fields other than the headers take fixed bytes and whose
// nh headers take headerBytes.
func recordLen(offsetDelta int32, tsDelta int64, key []byte, value []byte, nh, headerBytes int) (body, total int) {
	body = 1 + varintLen(tsDelta) + varintLen(int64(offsetDelta)) + varintLen(int64(nh)) + headerBytes
	if key == nil {
		body++
	} else {
		body += varintLen(int64(len(key))) + len(key)
	}
	if value == nil {
		body++
	} else {
		body += varintLen(int64(len(value))) + len(value)
	}
	return body, varintLen(int64(body)) + body
}

// appendRecord appends one record of the version 2 format; headers holds
// its nh headers already encoded.
func appendRecord(dst []byte, body int, offsetDelta int32, tsDelta int64, key, value []byte, nh int, headers []byte) []byte {
	dst = binary.AppendVarint(dst, int64(body))
	dst = append(dst, 0) // attributes
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, int64(offsetDelta))
	dst = appendVarintBytes(dst, key)
	dst = appendVarintBytes(dst, value)
	dst = binary.AppendVarint(dst, int64(nh))
	return append(dst, headers...)
}

// appendBatchHeader appends the header of record batch b whose records,
// compressed as codec says, take recordsLen bytes; the caller appends the
// records next, then calls finishBatch.
func appendBatchHeader(dst []byte, b *batch, codec sarama.CompressionCodec, recordsLen int) []byte {
	dst = binary.BigEndian.AppendUint64(dst, 0) // base offset, set by the broker
	dst = binary.BigEndian.AppendUint32(dst, uint32(batchOverhead-12+recordsLen))
	dst = binary.BigEndian.AppendUint32(dst, 0xffffffff) // partition leader epoch: none
	dst = append(dst, 2)                                 // magic
	dst = binary.BigEndian.AppendUint32(dst, 0)          // CRC, set by finishBatch
	dst = binary.BigEndian.AppendUint16(dst, uint16(codec)&0x7)
	dst = binary.BigEndian.AppendUint32(dst, uint32(b.n-1))
	dst = binary.BigEndian.AppendUint64(dst, uint64(b.firstTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(b.maxTS))
	dst = binary.BigEndian.AppendUint64(dst, uint64(b.pid))
	dst = binary.BigEndian.AppendUint16(dst, uint16(b.epoch))
	dst = binary.BigEndian.AppendUint32(dst, uint32(b.seq))
	return binary.BigEndian.AppendUint32(dst, uint32(b.n))
}

// setBatchCRC sets the CRC of the record batch that starts batch and ends
// with records (nil when batch holds them).
func setBatchCRC(batch, records []byte) {
	const crcAt = 8 + 4 + 4 + 1
	crc := crc32.Checksum(batch[crcAt+4:], castagnoli)
	crc = crc32.Update(crc, castagnoli, records)
	binary.BigEndian.PutUint32(batch[crcAt:], crc)
}

// appendString appends s as an int16-length-prefixed string.
func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// appendRequestHeader starts a request: size (set by the connection), API
// key and version, correlation id (set by the connection) and client id.
func appendRequestHeader(dst []byte, key, version int16, clientID string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(key))
	dst = binary.BigEndian.AppendUint16(dst, uint16(version))
	dst = binary.BigEndian.AppendUint32(dst, 0)
	return appendString(dst, clientID)
}

// errShortResponse reports a response that ended before its last field.
var errShortResponse = errors.New("kafka response truncated")

// reader reads big-endian protocol fields; the first read past the end
// sets err and every later one returns zero.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.err = errShortResponse
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) int16() int16 {
	if v := r.take(2); v != nil {
		return int16(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (r *reader) int32() int32 {
	if v := r.take(4); v != nil {
		return int32(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (r *reader) int64() int64 {
	if v := r.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (r *reader) string() string {
	n := r.int16()
	if n < 0 {
		return ""
	}
	return string(r.take(int(n)))
}

// partitionResult is one partition's answer in a produce response.
type partitionResult struct {
	topic     string
	partition int32
	err       sarama.KError
}

// parseProduceResponse reads a version 7 produce response body.
func parseProduceResponse(body []byte, out []partitionResult) ([]partitionResult, error) {
	r := reader{b: body}
	nt := r.int32()
	for range max(nt, 0) {
		topic := r.string()
		np := r.int32()
		for range max(np, 0) {
			p := partitionResult{topic: topic}
			p.partition = r.int32()
			p.err = sarama.KError(r.int16())
			r.int64() // base offset
			r.int64() // log append time
			r.int64() // log start offset
			if r.err != nil {
				break
			}
			out = append(out, p)
		}
	}
	r.int32() // throttle time
	if r.err != nil {
		return out, fmt.Errorf("read produce response: %w", r.err)
	}
	return out, nil
}

// brokerConn is the producer's connection to one broker: one request at a
// time, written and answered in turn.
type brokerConn struct {
	nc   net.Conn
	br   *bufio.Reader
	corr int32
	sc   *sarama.Config
	resp []byte
}

// dialBroker connects to addr with the client's TLS and SASL settings.
func dialBroker(ctx context.Context, addr string, sc *sarama.Config) (*brokerConn, error) {
	d := net.Dialer{Timeout: sc.Net.DialTimeout, KeepAlive: sc.Net.KeepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if sc.Net.TLS.Enable {
		tc := sc.Net.TLS.Config.Clone()
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tc.ServerName = host
			}
		}
		conn := tls.Client(nc, tc)
		hctx, cancel := context.WithTimeout(ctx, sc.Net.DialTimeout)
		err := conn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = conn
	}
	c := &brokerConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), sc: sc}
	if sc.Net.SASL.Enable {
		stop := context.AfterFunc(ctx, func() { nc.Close() })
		err := c.saslPlain()
		if !stop() || err != nil {
			nc.Close()
			return nil, errors.Join(err, ctx.Err())
		}
	}
	return c, nil
}

// saslPlain authenticates with SASL PLAIN: a handshake naming the
// mechanism, then the credentials.
func (c *brokerConn) saslPlain() error {
	req := appendRequestHeader(nil, apiSASLHandshake, saslHandshakeVersion, c.sc.ClientID)
	req = appendString(req, sarama.SASLTypePlaintext)
	body, err := c.roundTrip(net.Buffers{req})
	if err != nil {
		return fmt.Errorf("sasl handshake: %w", err)
	}
	r := reader{b: body}
	if code := sarama.KError(r.int16()); r.err != nil || code != sarama.ErrNoError {
		return fmt.Errorf("sasl handshake: the broker refused mechanism PLAIN: %w", errors.Join(code, r.err))
	}
	auth := make([]byte, 0, 2+len(c.sc.Net.SASL.AuthIdentity)+len(c.sc.Net.SASL.User)+len(c.sc.Net.SASL.Password))
	auth = append(append(append(append(append(auth, c.sc.Net.SASL.AuthIdentity...), 0), c.sc.Net.SASL.User...), 0), c.sc.Net.SASL.Password...)
	req = appendRequestHeader(nil, apiSASLAuthenticate, saslAuthenticateVersion, c.sc.ClientID)
	req = binary.BigEndian.AppendUint32(req, uint32(len(auth)))
	req = append(req, auth...)
	if body, err = c.roundTrip(net.Buffers{req}); err != nil {
		return fmt.Errorf("sasl authenticate: %w", err)
	}
	r = reader{b: body}
	code := sarama.KError(r.int16())
	msg := r.string()
	if r.err != nil {
		return fmt.Errorf("sasl authenticate: %w", r.err)
	}
	if code != sarama.ErrNoError {
		return fmt.Errorf("sasl authenticate as %q: %w: %s (check sasl.username and sasl.password)", c.sc.Net.SASL.User, code, msg)
	}
	return nil
}

// roundTrip sends the request in bufs (its first buffer built on
// appendRequestHeader) and returns the body of its response, valid until
// the next call.
func (c *brokerConn) roundTrip(bufs net.Buffers) ([]byte, error) {
	size := 0
	for _, b := range bufs {
		size += len(b)
	}
	c.corr++
	binary.BigEndian.PutUint32(bufs[0][0:], uint32(size-4))
	binary.BigEndian.PutUint32(bufs[0][8:], uint32(c.corr))
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.sc.Net.WriteTimeout)); err != nil {
		return nil, err
	}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		return nil, err
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(c.sc.Net.ReadTimeout + c.sc.Producer.Timeout)); err != nil {
		return nil, err
	}
	var sz [4]byte
	if _, err := io.ReadFull(c.br, sz[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > 100<<20 {
		return nil, fmt.Errorf("kafka response of %d bytes: not a response", n)
	}
	if cap(c.resp) < n {
		c.resp = make([]byte, n)
	}
	c.resp = c.resp[:n]
	if _, err := io.ReadFull(c.br, c.resp); err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(c.resp)); corr != c.corr {
		return nil, fmt.Errorf("kafka response for request %d, want %d", corr, c.corr)
	}
	return c.resp[4:], nil
}

// close closes the connection; a roundTrip in progress returns an error.
func (c *brokerConn) close() error { return c.nc.Close() }
