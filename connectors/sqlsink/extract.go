package sqlsink

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/tributary/tributary/core"
)

// Most mappings read fields of the event's data, each column's value a
// plain path such as event.data.order_id. For those, dataPaths reads the
// fields straight from the data's JSON text, once per event, instead of
// decoding the whole document into maps (which costs more than the rest
// of the sink's work on a 1 KB event). It answers only when it is sure to
// give what the expression gives: the data is a JSON object, valid as a
// whole, every object on a path is there, and no key of those objects is
// escaped. Otherwise the expressions run as they do for any mapping, on
// the decoded document. FuzzDataPaths checks the two against each other.

// pathRe matches a plain path into the data: event.data.a or event.data.a.b.
var pathRe = regexp.MustCompile(`^\s*event\.data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*$`)

// maxPathDepth bounds the nesting dataPaths reads; deeper documents take
// the expressions' way.
const maxPathDepth = 256

// dataPaths reads the columns whose expressions are plain paths.
type dataPaths struct {
	root *pathNode
	// cols are the columns read this way.
	cols []int
}

// pathNode is a member name of an object on the paths: the columns whose
// path ends there, and the members read further in its value.
type pathNode struct {
	name string
	cols []int
	kids []*pathNode
}

func (n *pathNode) kid(name string) *pathNode {
	for _, k := range n.kids {
		if k.name == name {
			return k
		}
	}
	return nil
}

// compileDataPaths returns the paths of the columns' expressions (the id
// column's is empty), or nil when some expression other than a plain
// path reads the data (or delete_when does): the data is decoded for
// it anyway, and the paths would save nothing.
func compileDataPaths(exprs []string, deleteWhen string) *dataPaths {
	if strings.Contains(deleteWhen, "data") {
		return nil
	}
	p := &dataPaths{root: &pathNode{}}
	for c, e := range exprs {
		m := pathRe.FindStringSubmatch(e)
		if m == nil {
			if strings.Contains(e, "data") {
				return nil
			}
			continue
		}
		n := p.root
		for _, name := range strings.Split(m[1][1:], ".") {
			k := n.kid(name)
			if k == nil {
				k = &pathNode{name: name}
				n.kids = append(n.kids, k)
			}
			n = k
		}
		n.cols = append(n.cols, c)
		p.cols = append(p.cols, c)
	}
	if len(p.cols) == 0 {
		return nil
	}
	return p
}

// read sets out[c] to the value of each path column c in ev's data, as
// the expression would give it, and reports whether it could.
func (p *dataPaths) read(ev *core.Event, out []any) bool {
	if ct := ev.DataContentType; ct != "" && !strings.Contains(ct, "json") {
		return false
	}
	s := scanner{b: ev.Data}
	s.ws()
	if s.peek() != '{' {
		return false
	}
	if !p.object(&s, p.root, out) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// object reads the members n wants from the object at s.i, checking it
// whole, and moves past it.
func (p *dataPaths) object(s *scanner, n *pathNode, out []any) bool {
	// The spans of the members wanted, on the stack for a few.
	var few [8][]byte
	var spans [][]byte
	if len(n.kids) <= len(few) {
		spans = few[:len(n.kids)]
	} else {
		spans = make([][]byte, len(n.kids))
	}
	s.i++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			ks := s.i
			esc, ok := s.str()
			if !ok || esc {
				return false
			}
			key := s.b[ks+1 : s.i-1]
			s.ws()
			if s.peek() != ':' {
				return false
			}
			s.i++
			s.ws()
			vs := s.i
			if !s.value(0) {
				return false
			}
			for i, k := range n.kids {
				// The last of two equal keys wins, as in the decoding.
				if string(key) == k.name {
					spans[i] = s.b[vs:s.i]
				}
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if s.peek() != '}' {
				return false
			}
			s.i++
			break
		}
	}
	for i, k := range n.kids {
		v := spans[i]
		if v == nil {
			if len(k.kids) > 0 {
				return false
			}
			for _, c := range k.cols {
				out[c] = nil
			}
			continue
		}
		if len(k.cols) > 0 {
			x, ok := decodeValue(v)
			if !ok {
				return false
			}
			for _, c := range k.cols {
				out[c] = x
			}
		}
		if len(k.kids) > 0 {
			if v[0] != '{' {
				return false
			}
			if !p.object(&scanner{b: v}, k, out) {
				return false
			}
		}
	}
	return true
}

// decodeValue returns the value of one JSON value, checked, as the
// expressions see it: strings, json.Number, booleans, nil, and maps and
// lists of those.
func decodeValue(v []byte) (any, bool) {
	switch v[0] {
	case '"':
		inner := v[1 : len(v)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), true
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, false
		}
		return s, true
	case 't':
		return true, true
	case 'f':
		return false, true
	case 'n':
		return nil, true
	case '{', '[':
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return nil, false
		}
		return x, true
	}
	return json.Number(v), true
}

// scanner checks JSON text as RFC 8259 has it.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value checks one value from s.i and moves past it.
func (s *scanner) value(depth int) bool {
	if depth > maxPathDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		_, ok := s.str()
		return ok
	case c == '{':
		s.i++
		s.ws()
		if s.peek() == '}' {
			s.i++
			return true
		}
		for {
			s.ws()
			if s.peek() != '"' {
				return false
			}
			if _, ok := s.str(); !ok {
				return false
			}
			s.ws()
			if s.peek() != ':' {
				return false
			}
			s.i++
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	}
	return false
}

func (s *scanner) literal(w string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		return false
	}
	s.i += len(w)
	return true
}

// str checks a string from s.i (its opening quote) and moves past it;
// escaped says it holds an escape.
func (s *scanner) str() (escaped, ok bool) {
	if s.peek() != '"' {
		return false, false
	}
	s.i++
	for s.i < len(s.b) {
		// Eight plain bytes at a time, then the next byte alone.
		for s.i+8 <= len(s.b) {
			x := binary.LittleEndian.Uint64(s.b[s.i:])
			if hasLess(x, 0x20) || hasByte(x, '"') || hasByte(x, '\\') {
				break
			}
			s.i += 8
		}
		if s.i == len(s.b) {
			break
		}
		c := s.b[s.i]
		if plain[c] {
			s.i++
			continue
		}
		switch {
		case c == '"':
			s.i++
			return escaped, true
		case c < 0x20:
			return false, false
		case c == '\\':
			escaped = true
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for range 4 {
					if !isHex(s.peek()) {
						return false, false
					}
					s.i++
				}
			default:
				return false, false
			}
		default:
			s.i++
		}
	}
	return false, false
}

// plain marks the bytes a string holds as they are: not a quote, a
// backslash or a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// The bytes of a uint64, for hasLess and hasByte.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// hasLess reports whether a byte of x is below n, at most 0x80.
func hasLess(x uint64, n byte) bool { return (x-lowBits*uint64(n))&^x&highBits != 0 }

// hasByte reports whether a byte of x is c.
func hasByte(x uint64, c byte) bool {
	y := x ^ lowBits*uint64(c)
	return (y-lowBits)&^y&highBits != 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number checks a number from s.i: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for isDigit(s.peek()) {
			s.i++
		}
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !isDigit(s.peek()) {
			return false
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !isDigit(s.peek()) {
			return false
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	return true
}
