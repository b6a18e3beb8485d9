package webhook

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds the nesting of JSON bodies, as encoding/json does.
const maxJSONDepth = 10000

// jsonParser decodes a JSON document into the values encoding/json
// produces with UseNumber (map[string]any, []any, string, json.Number,
// bool, nil), several times faster since it walks the bytes once without
// reflection. FuzzParseBody checks it against encoding/json.
//
// Strings without escapes and numbers are substrings of one copy of the
// document, when there is one (s), so that they cost no allocation of
// their own; without it (a pruned parse building a few values of a large
// document) each is a string of its own.
type jsonParser struct {
	b []byte
	// s is the document copied once, or "" (see sub).
	s     string
	i     int
	depth int
	// stack holds the elements of the arrays being parsed, so that each
	// array is allocated once at its final size.
	stack []any
	// open holds the containers skipValue is in ('{' or '['), from one
	// skip to the next.
	open []byte
}

// sub returns the document's bytes from start to end as a string: a
// substring of s when the document was copied, else a copy of their own.
func (p *jsonParser) sub(start, end int) string {
	if p.s != "" {
		return p.s[start:end]
	}
	return string(p.b[start:end])
}

var errJSONSyntax = errors.New("invalid JSON")

func (p *jsonParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errJSONSyntax, what, p.i)
}

func (p *jsonParser) ws() {
	// Every byte of white space is at most ' ': most calls end at once.
	for p.i < len(p.b) && p.b[p.i] <= ' ' {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value() (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return s, nil
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, p.fail("unexpected character")
}

func (p *jsonParser) literal(word string, v any) (any, error) {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return nil, p.fail("invalid literal")
	}
	p.i += len(word)
	return v, nil
}

func (p *jsonParser) enter() error {
	p.depth++
	if p.depth > maxJSONDepth {
		return p.fail("nesting too deep")
	}
	return nil
}

func (p *jsonParser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // {
	m := make(map[string]any, 4)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return m, nil
	}
	for {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("unexpected end of object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.depth--
			return m, nil
		default:
			return nil, p.fail("expected ',' or '}'")
		}
	}
}

// key reads an object's key and the colon after it.
func (p *jsonParser) key() (string, error) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.fail("expected a string key")
	}
	k, err := p.str()
	if err != nil {
		return "", err
	}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return "", p.fail("expected ':'")
	}
	p.i++
	return k, nil
}

func (p *jsonParser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // [
	base := len(p.stack)
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return []any{}, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		p.stack = append(p.stack, v)
		p.ws()
		if p.i >= len(p.b) {
			return nil, p.fail("unexpected end of array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.depth--
			a := make([]any, len(p.stack)-base)
			copy(a, p.stack[base:])
			clear(p.stack[base:])
			p.stack = p.stack[:base]
			return a, nil
		default:
			return nil, p.fail("expected ',' or ']'")
		}
	}
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, p.fail("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	return json.Number(p.sub(start, p.i)), nil
}

// str reads a string starting at its opening quote. Invalid UTF-8 and
// lone surrogates become U+FFFD, as in encoding/json. It returns a string,
// not an any, so that object keys are not boxed.
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	start := p.i
	// Fast path: no escapes, ASCII, no control characters.
	p.i = plainRun(p.b, p.i, true)
	if p.i < len(p.b) && p.b[p.i] == '"' {
		p.i++
		return p.sub(start, p.i-1), nil
	}
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", p.fail("control character in string")
		case c == '\\':
			p.i++
			if p.i >= len(p.b) {
				return "", p.fail("unexpected end of string")
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", p.fail("invalid \\u escape")
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						var ok2 bool
						r2, ok2 = p.hex4()
						if !ok2 {
							return "", p.fail("invalid \\u escape")
						}
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							out = utf8.AppendRune(out, dec)
							continue
						}
						p.i = save
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", p.fail("invalid escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			p.i += size
			out = utf8.AppendRune(out, r)
		}
	}
	return "", p.fail("unexpected end of string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

// decodeJSON parses one JSON document, with nothing but white space after
// it.
func decodeJSON(b []byte) (any, error) {
	p := jsonParser{b: b, s: string(b)}
	return p.document()
}

// checkJSON reports whether b is one JSON document, building nothing.
func checkJSON(b []byte) error {
	p := jsonParser{b: b}
	if err := p.skipValue(); err != nil {
		return err
	}
	return p.end()
}

func (p *jsonParser) document() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// end checks that nothing but white space follows the document's value.
func (p *jsonParser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return p.fail("unexpected data after the JSON value")
	}
	return nil
}

// plainRun returns the index of the first byte from i on that ends a
// string's plain run: a quote, a backslash, a control character and, when
// ascii is set, a byte of a multi-byte UTF-8 sequence; len(b) when there
// is none. It tests eight bytes at a time.
func plainRun(b []byte, i int, ascii bool) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A byte below n sets its high bit in (x - n) &^ x; a byte equal
		// to c is a zero byte of x ^ c, below 1.
		q, bs := x^(ones*'"'), x^(ones*'\\')
		special := (x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs
		if ascii {
			special |= x
		}
		if special&highs != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 || ascii && c >= utf8.RuneSelf {
			return i
		}
	}
	return len(b)
}

// skipValue checks the syntax of one value as value does, with the same
// errors, but builds nothing and allocates nothing (but the stack of open
// containers of a deeply nested document, once): the path of what the
// rules do not read, and of checkJSON. FuzzDecodeJSON holds it to
// decodeJSON.
func (p *jsonParser) skipValue() error {
	base := len(p.open)
	for {
		p.ws()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of input")
		}
		switch c := p.b[p.i]; {
		case c == '{' || c == '[':
			if err := p.enter(); err != nil {
				return err
			}
			p.i++
			p.ws()
			if p.i < len(p.b) && p.b[p.i] == c+2 { // '}' or ']'
				p.i++
				p.depth--
				break
			}
			p.open = append(p.open, c)
			if c == '{' {
				if err := p.skipKey(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if err := p.skipString(); err != nil {
				return err
			}
		case c == 't':
			if _, err := p.literal("true", nil); err != nil {
				return err
			}
		case c == 'f':
			if _, err := p.literal("false", nil); err != nil {
				return err
			}
		case c == 'n':
			if _, err := p.literal("null", nil); err != nil {
				return err
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if err := p.skipNumber(); err != nil {
				return err
			}
		default:
			return p.fail("unexpected character")
		}
		// A value ended: close the containers it ends, up to the next
		// element of the innermost one still open.
	next:
		for {
			if len(p.open) == base {
				return nil
			}
			kind := p.open[len(p.open)-1]
			p.ws()
			if p.i >= len(p.b) {
				if kind == '{' {
					return p.fail("unexpected end of object")
				}
				return p.fail("unexpected end of array")
			}
			switch c := p.b[p.i]; {
			case c == ',':
				p.i++
				if kind == '{' {
					if err := p.skipKey(); err != nil {
						return err
					}
				}
				break next
			case c == kind+2:
				p.i++
				p.depth--
				p.open = p.open[:len(p.open)-1]
			case kind == '{':
				return p.fail("expected ',' or '}'")
			default:
				return p.fail("expected ',' or ']'")
			}
		}
	}
}

// skipKey checks an object's key and the colon after it, as key does.
func (p *jsonParser) skipKey() error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return p.fail("expected a string key")
	}
	if err := p.skipString(); err != nil {
		return err
	}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return p.fail("expected ':'")
	}
	p.i++
	return nil
}

// skipString checks a string starting at its opening quote as str does:
// only control characters and malformed escapes are errors.
func (p *jsonParser) skipString() error {
	p.i++ // "
	for {
		p.i = plainRun(p.b, p.i, false)
		if p.i >= len(p.b) {
			return p.fail("unexpected end of string")
		}
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return nil
		case c < 0x20:
			return p.fail("control character in string")
		}
		// A backslash.
		p.i++
		if p.i >= len(p.b) {
			return p.fail("unexpected end of string")
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return p.fail("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
				save := p.i
				p.i += 2
				r2, ok := p.hex4()
				if !ok {
					return p.fail("invalid \\u escape")
				}
				if utf16.DecodeRune(r, r2) == utf8.RuneError {
					// Not a pair: the second escape stands alone.
					p.i = save
				}
			}
		default:
			return p.fail("invalid escape")
		}
	}
}

// skipNumber checks a number as number does.
func (p *jsonParser) skipNumber() error {
	b := p.b
	i := p.i
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
		p.i = i
		return p.fail("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return p.fail("invalid number")
		}
	}
	p.i = i
	return nil
}
