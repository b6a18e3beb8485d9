package plugin

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/tributary/tributary/core"
)

// This file decodes the JSON Lines changes message by hand: one pass, no
// reflection, map keys interned and short values kept boxed. It yields what
// encoding/json with UseNumber yields; a line of any other shape (another
// message type, an unknown field, a value of an unexpected type, a field
// given twice) is left to encoding/json, so odd input keeps its exact
// behaviour and error. FuzzJSONChanges checks the two agree.

var changesPrefix = []byte(`{"type":"changes"`)

// fastChanges decodes line when it is a changes message it handles.
func (d *decoder) fastChanges(line []byte) (*Message, bool) {
	if !bytes.HasPrefix(line, changesPrefix) {
		return nil, false
	}
	p := &jparser{b: line, d: d}
	m := &Message{}
	var seen fields
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "type":
			s, ok := p.str()
			m.Type = TypeChanges
			return seen.first(0) && ok && s == TypeChanges
		case "changes":
			return seen.first(1) && p.changes(&m.Changes)
		}
		return false
	})
	p.ws()
	if !ok || p.i != len(p.b) {
		return nil, false
	}
	return m, true
}

// fields records which fields of a struct an object gave. A field given
// twice is left to encoding/json, which merges the second object into
// the first, and clears a map given null, by rules of its own.
type fields uint16

// first marks field i and reports whether it was not marked before.
func (f *fields) first(i int) bool {
	bit := fields(1) << i
	if *f&bit != 0 {
		return false
	}
	*f |= bit
	return true
}

type jparser struct {
	b []byte
	i int
	d *decoder
}

func (p *jparser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next skips white space and returns the next byte, or 0 at the end.
func (p *jparser) next() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// null consumes a null if one comes next.
func (p *jparser) null() bool {
	if p.next() == 'n' && bytes.HasPrefix(p.b[p.i:], []byte("null")) {
		p.i += 4
		return true
	}
	return false
}

// object parses an object, calling field for each key with the parser
// before the key's value; field consumes the value.
func (p *jparser) object(field func(key []byte) bool) bool {
	if p.next() != '{' {
		return false
	}
	p.i++
	if p.next() == '}' {
		p.i++
		return true
	}
	for {
		key, ok := p.rawStr()
		if !ok || p.next() != ':' {
			return false
		}
		p.i++
		if !field(key) {
			return false
		}
		switch p.next() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// rawStr returns the bytes of a string without escapes or invalid UTF-8;
// others are not handled here.
func (p *jparser) rawStr() ([]byte, bool) {
	if p.next() != '"' {
		return nil, false
	}
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false
}

// str parses a string, escapes included.
func (p *jparser) str() (string, bool) {
	start := p.i
	if s, ok := p.rawStr(); ok {
		return string(s), true
	}
	p.i = start
	return p.slowStr()
}

// slowStr leaves a string with escapes or invalid UTF-8 to encoding/json.
func (p *jparser) slowStr() (string, bool) {
	if p.next() != '"' {
		return "", false
	}
	start := p.i
	for j := start + 1; j < len(p.b); j++ {
		switch p.b[j] {
		case '\\':
			j++
		case '"':
			var s string
			if err := json.Unmarshal(p.b[start:j+1], &s); err != nil {
				return "", false
			}
			p.i = j + 1
			return s, true
		}
	}
	return "", false
}

func (p *jparser) changes(out *[]Change) bool {
	if p.null() {
		return true
	}
	if p.next() != '[' {
		return false
	}
	p.i++
	chs := make([]Change, 0, 64)
	if p.next() == ']' {
		p.i++
		*out = chs
		return true
	}
	for {
		chs = append(chs, Change{})
		if !p.change(&chs[len(chs)-1]) {
			return false
		}
		switch p.next() {
		case ',':
			p.i++
		case ']':
			p.i++
			*out = chs
			return true
		default:
			return false
		}
	}
}

func (p *jparser) change(c *Change) bool {
	var seen fields
	return p.object(func(key []byte) bool {
		switch string(key) {
		case "op":
			if !seen.first(0) {
				return false
			}
			if p.null() {
				return true
			}
			s, ok := p.rawStr()
			c.Op = op(s)
			return ok
		case "key":
			return seen.first(1) && p.mapField(&c.Key)
		case "before":
			return seen.first(2) && p.mapField(&c.Before)
		case "after":
			return seen.first(3) && p.mapField(&c.After)
		case "meta":
			return seen.first(4) && p.mapField(&c.Meta)
		case "payload":
			if !seen.first(5) {
				return false
			}
			v, ok := p.value(0)
			c.Payload = v
			return ok
		case "source":
			return seen.first(6) && p.source(&c.Source)
		case "position":
			return seen.first(7) && p.position(&c.Position)
		case "raw":
			return seen.first(8) && p.base64(&c.Raw)
		}
		return false
	})
}

func (p *jparser) mapField(dst *map[string]any) bool {
	if p.null() {
		return true
	}
	m, ok := p.mapValue(0)
	*dst = m
	return ok
}

func (p *jparser) source(s *core.SourceInfo) bool {
	if p.null() {
		return true
	}
	var seen fields
	return p.object(func(key []byte) bool {
		var dst *string
		var i int
		switch string(key) {
		case "system":
			dst, i = &s.System, 0
		case "schema":
			dst, i = &s.Schema, 1
		case "table":
			dst, i = &s.Table, 2
		case "endpoint":
			dst, i = &s.Endpoint, 3
		case "tx_id":
			dst, i = &s.TxID, 4
		case "commit_time":
			if !seen.first(5) {
				return false
			}
			if p.null() {
				return true
			}
			start := p.i
			if _, ok := p.rawStr(); !ok {
				return false
			}
			return s.CommitTime.UnmarshalJSON(p.b[start:p.i]) == nil
		default:
			return false
		}
		if !seen.first(i) {
			return false
		}
		if p.null() {
			return true
		}
		if b, ok := p.rawStr(); ok {
			*dst = p.d.intern(b)
			return true
		}
		return false
	})
}

func (p *jparser) position(pos *core.Position) bool {
	if p.null() {
		return true
	}
	var seen fields
	return p.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			if !seen.first(0) {
				return false
			}
			if p.null() {
				return true
			}
			n, ok := p.number()
			if !ok {
				return false
			}
			v, err := strconv.ParseUint(string(n), 10, 32)
			pos.Version = uint32(v)
			return err == nil
		case "d":
			return seen.first(1) && p.base64(&pos.Data)
		}
		return false
	})
}

func (p *jparser) base64(dst *[]byte) bool {
	if p.null() {
		*dst = nil
		return true
	}
	s, ok := p.rawStr()
	if !ok {
		return false
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	*dst = b[:n]
	return err == nil
}

// number consumes a number and returns its text.
func (p *jparser) number() ([]byte, bool) {
	p.ws()
	b, i := p.b, p.i
	digits := func() bool {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, false
		}
	}
	n := b[p.i:i]
	p.i = i
	return n, true
}

func (p *jparser) mapValue(depth int) (map[string]any, bool) {
	if depth > maxDepth {
		return nil, false
	}
	m := make(map[string]any, 8)
	ok := p.object(func(key []byte) bool {
		k := p.d.intern(key)
		v, ok := p.value(depth + 1)
		m[k] = v
		return ok
	})
	return m, ok
}

func (p *jparser) value(depth int) (any, bool) {
	switch c := p.next(); {
	case c == '"':
		start := p.i
		if s, ok := p.rawStr(); ok {
			return p.d.boxed(s, false), true
		}
		p.i = start
		return p.slowStr()
	case c == '{':
		return p.mapValue(depth)
	case c == '[':
		if depth > maxDepth {
			return nil, false
		}
		p.i++
		list := []any{}
		if p.next() == ']' {
			p.i++
			return list, true
		}
		for {
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			list = append(list, v)
			switch p.next() {
			case ',':
				p.i++
			case ']':
				p.i++
				return list, true
			default:
				return nil, false
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		n, ok := p.number()
		if !ok {
			return nil, false
		}
		return p.d.boxed(n, true), true
	case c == 't' && bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return true, true
	case c == 'f' && bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return false, true
	case p.null():
		return nil, true
	}
	return nil, false
}
