package kafka

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/IBM/sarama"
)

// lyingConn passes a broker connection through, but rewrites the error
// code of every partition in the first `lies` produce responses to code:
// the broker stored the batches, the producer is told otherwise. It tells
// produce responses from the others (ApiVersions, SASL) by the
// correlation ids of the requests written. With gate set, produce
// responses are held back until gate is closed: the request stays in
// flight.
type lyingConn struct {
	net.Conn
	mu   *sync.Mutex
	lies *int
	code sarama.KError
	gate <-chan struct{}

	wmu     sync.Mutex
	whead   []byte          // the start of the request being written
	wskip   int             // bytes of the request being written left to pass
	produce map[int32]int16 // correlation id of each produce request: its version

	in  []byte // read from the broker, not yet whole responses
	out []byte // whole responses, rewritten, to hand out
}

func (c *lyingConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	for rest := b; len(rest) > 0; {
		if c.wskip > 0 {
			n := min(c.wskip, len(rest))
			c.wskip -= n
			rest = rest[n:]
			continue
		}
		n := min(12-len(c.whead), len(rest))
		c.whead = append(c.whead, rest[:n]...)
		rest = rest[n:]
		if len(c.whead) == 12 {
			size := int(binary.BigEndian.Uint32(c.whead))
			key := int16(binary.BigEndian.Uint16(c.whead[4:]))
			version := int16(binary.BigEndian.Uint16(c.whead[6:]))
			corr := int32(binary.BigEndian.Uint32(c.whead[8:]))
			if key == 0 {
				if c.produce == nil {
					c.produce = map[int32]int16{}
				}
				c.produce[corr] = version
			}
			c.wskip = size + 4 - 12
			c.whead = c.whead[:0]
		}
	}
	c.wmu.Unlock()
	return c.Conn.Write(b)
}

func (c *lyingConn) Read(b []byte) (int, error) {
	for len(c.out) == 0 {
		buf := make([]byte, 64<<10)
		n, err := c.Conn.Read(buf)
		c.in = append(c.in, buf[:n]...)
		for len(c.in) >= 8 {
			size := 4 + int(binary.BigEndian.Uint32(c.in))
			if len(c.in) < size {
				break
			}
			frame := c.in[:size:size]
			c.in = c.in[size:]
			corr := int32(binary.BigEndian.Uint32(frame[4:]))
			c.wmu.Lock()
			version, isProduce := c.produce[corr]
			delete(c.produce, corr)
			c.wmu.Unlock()
			if isProduce {
				if c.gate != nil {
					<-c.gate
				}
				c.mu.Lock()
				if *c.lies > 0 {
					*c.lies--
					body := frame[8:]
					if version >= 9 {
						body = body[1:] // the response header's tagged fields: none
					}
					rewriteProduceErrors(body, version, c.code)
				}
				c.mu.Unlock()
			}
			c.out = append(c.out, frame...)
		}
		if err != nil && len(c.out) == 0 {
			return 0, err
		}
	}
	n := copy(b, c.out)
	c.out = c.out[n:]
	return n, nil
}

// rewriteProduceErrors sets the error code of every partition of a
// produce response body of the given version (3 to 10) to code.
func rewriteProduceErrors(body []byte, version int16, code sarama.KError) {
	flexible := version >= 9
	at := 0
	i32 := func() int { v := int(int32(binary.BigEndian.Uint32(body[at:]))); at += 4; return v }
	uvar := func() int { v, n := binary.Uvarint(body[at:]); at += n; return int(v) }
	count := func() int {
		if flexible {
			return uvar() - 1
		}
		return i32()
	}
	str := func() { // a string or nullable string
		if flexible {
			if n := uvar() - 1; n > 0 {
				at += n
			}
			return
		}
		n := int(int16(binary.BigEndian.Uint16(body[at:])))
		at += 2
		if n > 0 {
			at += n
		}
	}
	tags := func() {
		if !flexible {
			return
		}
		for range uvar() {
			uvar()
			at += uvar()
		}
	}
	for range count() {
		str()
		for range count() {
			at += 4 // partition index
			binary.BigEndian.PutUint16(body[at:], uint16(code))
			at += 2 + 8 + 8 // error, base offset, log append time
			if version >= 5 {
				at += 8 // log start offset
			}
			if version >= 8 {
				for range count() {
					at += 4
					str()
					tags()
				}
				str()
			}
			tags()
		}
		tags()
	}
}
