package webhook

import (
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
// document, so that they cost no allocation of their own.
type jsonParser struct {
	b     []byte
	s     string // the document, copied once
	i     int
	depth int
	// skip checks syntax only: nothing is built and nothing allocated.
	skip bool
	// stack holds the elements of the arrays being parsed, so that each
	// array is allocated once at its final size.
	stack []any
}

var errJSONSyntax = errors.New("invalid JSON")

func (p *jsonParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errJSONSyntax, what, p.i)
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
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
	var m map[string]any
	if !p.skip {
		m = make(map[string]any, 4)
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		if p.skip {
			return nil, nil
		}
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
		if !p.skip {
			m[k] = v
		}
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
			if p.skip {
				return nil, nil
			}
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
		if p.skip {
			return nil, nil
		}
		return []any{}, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if !p.skip {
			p.stack = append(p.stack, v)
		}
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
			if p.skip {
				return nil, nil
			}
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
	if p.skip {
		return nil, nil
	}
	return json.Number(p.s[start:p.i]), nil
}

// str reads a string starting at its opening quote. Invalid UTF-8 and
// lone surrogates become U+FFFD, as in encoding/json. It returns a string,
// not an any, so that object keys are not boxed.
func (p *jsonParser) str() (string, error) {
	p.i++ // "
	start := p.i
	// Fast path: no escapes, valid UTF-8, no control characters.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			if p.skip {
				return "", nil
			}
			return p.s[start : p.i-1], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	var out []byte
	if !p.skip {
		out = make([]byte, 0, p.i-start+16)
		out = append(out, p.b[start:p.i]...)
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if p.skip {
				return "", nil
			}
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
	p := jsonParser{b: b, skip: true}
	_, err := p.document()
	return err
}

func (p *jsonParser) document() (any, error) {
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.fail("unexpected data after the JSON value")
	}
	return v, nil
}
