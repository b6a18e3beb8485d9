package plugin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes bounds one JSON Lines message; a longer line is a protocol
// error, so a misbehaving plugin cannot grow the sidecar's memory.
const MaxLineBytes = 64 << 20

// jsonSpace is the white space JSON allows around a value.
const jsonSpace = " \t\r\n"

// NewJSONConn returns a Conn speaking JSON Lines: one Message as a JSON
// object per line, on r and w. A received line decodes as encoding/json
// decodes it, numbers as json.Number; blank lines are skipped, and a line
// holding more than one value is an error.
func NewJSONConn(r io.Reader, w io.Writer) Conn {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &jsonConn{r: bufio.NewReaderSize(r, 64<<10), w: bw, enc: json.NewEncoder(bw)}
}

type jsonConn struct {
	r   *bufio.Reader
	w   *bufio.Writer
	enc *json.Encoder
	buf []byte
	dec decoder // Recv's, for changes messages
}

// Send writes m as one line and flushes it.
func (c *jsonConn) Send(m *Message) error {
	if err := c.enc.Encode(m); err != nil {
		return err
	}
	return c.w.Flush()
}

// Recv reads the next message.
func (c *jsonConn) Recv() (*Message, error) {
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, err
		}
		line = bytes.Trim(line, jsonSpace)
		if len(line) == 0 {
			continue
		}
		if m, ok := c.dec.fastChanges(line); ok {
			return m, nil
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var m Message
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("decode message %.120q: %w", line, err)
		}
		if dec.InputOffset() != int64(len(line)) {
			return nil, fmt.Errorf("decode message %.120q: data after the message at offset %d; send one message per line", line, dec.InputOffset())
		}
		if m.Type == "" {
			return nil, fmt.Errorf("message without a type: %.120q", line)
		}
		return &m, nil
	}
}

func (c *jsonConn) readLine() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		chunk, err := c.r.ReadSlice('\n')
		c.buf = append(c.buf, chunk...)
		if len(c.buf) > MaxLineBytes {
			return nil, fmt.Errorf("message longer than %d bytes", MaxLineBytes)
		}
		switch {
		case err == nil:
			return c.buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(bytes.TrimSpace(c.buf)) > 0:
			return c.buf, nil
		default:
			return nil, err
		}
	}
}
