package audit

import (
	"encoding/binary"
	"encoding/json"
)

// The log keeps data that is JSON as its text and anything else in
// base64, so it checks the data of every event it logs: events come from
// the stream, where any producer (a Kafka client, a Go program publishing
// to the embedded stream) may put bytes that only claim to be JSON, and a
// row whose data is not JSON would break every json_extract over the
// table. encoding/json's Valid takes about 2 µs for 1 KB, most of it a
// call per byte of a string; validJSON gives the same answers (see
// FuzzValidJSON) and skips the inside of strings 8 bytes at a time.

// maxValidDepth is the deepest nesting validJSON follows itself; deeper
// documents go to json.Valid.
const maxValidDepth = 64

// validJSON reports whether b is one JSON value, with white space around
// it allowed, as json.Valid does (and, like it, without checking that
// strings are UTF-8).
func validJSON(b []byte) bool {
	p := jsonCheck{b: b}
	p.ws()
	if !p.value() {
		if p.deep {
			return json.Valid(b)
		}
		return false
	}
	p.ws()
	return p.i == len(b)
}

// jsonCheck is the state of validJSON: b and the offset of the next byte.
// The containers it is inside are the low depth bits of stack, 1 for an
// object and 0 for an array, the innermost lowest.
type jsonCheck struct {
	b     []byte
	i     int
	depth int
	stack uint64
	deep  bool // gave up at maxValidDepth
}

// ws skips white space.
func (p *jsonCheck) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value checks one value and what it holds, iteratively: containers are
// tracked in stack rather than by recursion.
func (p *jsonCheck) value() bool {
	for {
		// A value starts here.
		if p.i >= len(p.b) {
			return false
		}
		switch c := p.b[p.i]; {
		case c == '{':
			p.i++
			if !p.push(1) {
				return false
			}
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				p.pop()
				break
			}
			if !p.member() {
				return false
			}
			continue
		case c == '[':
			p.i++
			if !p.push(0) {
				return false
			}
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				p.pop()
				break
			}
			continue
		case c == '"':
			if !p.str() {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if !p.number() {
				return false
			}
		case c == 't':
			if !p.word("true") {
				return false
			}
		case c == 'f':
			if !p.word("false") {
				return false
			}
		case c == 'n':
			if !p.word("null") {
				return false
			}
		default:
			return false
		}
		// A value ended: close the containers it ends, or go on to the
		// next element or member of the innermost.
		for {
			if p.depth == 0 {
				return true
			}
			p.ws()
			if p.i >= len(p.b) {
				return false
			}
			c := p.b[p.i]
			inObject := p.stack&1 == 1
			if c == ',' {
				p.i++
				p.ws()
				if inObject && !p.member() {
					return false
				}
				break
			}
			if (inObject && c == '}') || (!inObject && c == ']') {
				p.i++
				p.pop()
				continue
			}
			return false
		}
	}
}

// member checks an object member's key and colon, leaving p at its value.
func (p *jsonCheck) member() bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' || !p.str() {
		return false
	}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return false
	}
	p.i++
	p.ws()
	return true
}

// push enters a container: 1 an object, 0 an array.
func (p *jsonCheck) push(kind uint64) bool {
	if p.depth == maxValidDepth {
		p.deep = true
		return false
	}
	p.stack = p.stack<<1 | kind
	p.depth++
	return true
}

// pop leaves the innermost container.
func (p *jsonCheck) pop() {
	p.stack >>= 1
	p.depth--
}

// word checks the literal w.
func (p *jsonCheck) word(w string) bool {
	if len(p.b)-p.i < len(w) || string(p.b[p.i:p.i+len(w)]) != w {
		return false
	}
	p.i += len(w)
	return true
}

// The SWAR constants: a byte of ones, and of high bits.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special has the high bit set in some byte when one of the 8 bytes of
// x ends or escapes a string or is a control character: is '"', '\\' or
// below 0x20.
func special(x uint64) uint64 {
	quote := x ^ ('"' * ones)
	slash := x ^ ('\\' * ones)
	// A byte of v is below n (n <= 0x80) when (v - n) borrows into its
	// high bit and v's high bit is clear; the test is exact for "any".
	return ((x-0x20*ones)&^x | (quote-ones)&^quote | (slash-ones)&^slash) & highs
}

// str checks a string starting at its opening quote.
func (p *jsonCheck) str() bool {
	b := p.b
	i := p.i + 1
	for {
		for i+32 <= len(b) {
			w := b[i : i+32 : i+32]
			if special(binary.LittleEndian.Uint64(w))|special(binary.LittleEndian.Uint64(w[8:]))|
				special(binary.LittleEndian.Uint64(w[16:]))|special(binary.LittleEndian.Uint64(w[24:])) != 0 {
				break
			}
			i += 32
		}
		for i+8 <= len(b) && special(binary.LittleEndian.Uint64(b[i:])) == 0 {
			i += 8
		}
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '"':
			p.i = i + 1
			return true
		case c == '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		default:
			i++
		}
	}
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number checks a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonCheck) number() bool {
	b, i := p.b, p.i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	p.i = i
	return true
}
