package webhook

import (
	"github.com/tributary/tributary/core"
)

// pathNode is one level of the payload paths the connector's rules read
// (core.PayloadPruner): the fields below it that are read, and whether the
// value here is read whole or only by length.
type pathNode struct {
	// name is the field's name in its parent's children, shared by the
	// objects built: their keys cost no allocation.
	name     string
	whole    bool
	lenOnly  bool
	children map[string]*pathNode
}

// newPathTree returns the tree of paths; the root stands for the payload.
func newPathTree(paths []core.PayloadPath) *pathNode {
	root := &pathNode{}
	for _, p := range paths {
		n := root
		for _, f := range p.Fields {
			if n.whole {
				break
			}
			c := n.children[f]
			if c == nil {
				c = &pathNode{name: f}
				if n.children == nil {
					n.children = map[string]*pathNode{}
				}
				n.children[f] = c
			}
			n = c
		}
		if p.LenOnly {
			n.lenOnly = true
		} else {
			n.whole = true
		}
	}
	return root
}

// nils backs the arrays of which only the length is read: their elements
// are nil and the slices are read-only (core.Change), so they share it.
var nils = make([]any, 4096)

// decodeJSONPruned parses one JSON document as decodeJSON does, checking
// all of its syntax but building only what the paths of root reach: an
// object on a path holds only the fields read (all its fields, as nil
// unless read, when its length is read), an array whose length alone is
// read holds nils, and a value that is not an object where fields below it
// are read is built whole, so that expressions meet the same kinds of
// values, and fail in the same way, as on the whole payload.
//
// The document is not copied as a whole unless an object or array is read
// whole: the few strings and numbers built are copies of their own, and
// keys along the paths are the paths' own strings.
func decodeJSONPruned(b []byte, root *pathNode) (any, error) {
	p := jsonParser{b: b}
	v, err := p.pruned(root)
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return v, nil
}

// pruned parses one value as n says.
func (p *jsonParser) pruned(n *pathNode) (any, error) {
	if n == nil {
		return nil, p.skipValue()
	}
	if n.whole {
		p.ws()
		if p.s == "" && p.i < len(p.b) && (p.b[p.i] == '{' || p.b[p.i] == '[') {
			// A subtree read whole: its strings are substrings of
			// one copy, as in decodeJSON.
			p.s = string(p.b)
		}
		return p.value()
	}
	p.ws()
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end of input")
	}
	switch p.b[p.i] {
	case '{':
		return p.prunedObject(n)
	case '[':
		if n.lenOnly && len(n.children) == 0 {
			return p.countArray()
		}
	}
	return p.value()
}

func (p *jsonParser) prunedObject(n *pathNode) (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // {
	m := make(map[string]any, len(n.children))
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		p.depth--
		return m, nil
	}
	for {
		k, err := p.rawKey()
		if err != nil {
			return nil, err
		}
		c := n.children[string(k)]
		v, err := p.pruned(c)
		if err != nil {
			return nil, err
		}
		switch {
		case c != nil:
			m[c.name] = v
		case n.lenOnly:
			m[string(k)] = v
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
			return m, nil
		default:
			return nil, p.fail("expected ',' or '}'")
		}
	}
}

// countArray checks an array and returns one of as many nils.
func (p *jsonParser) countArray() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.i++ // [
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return nils[:0:0], nil
	}
	count := 0
	for {
		if err := p.skipValue(); err != nil {
			return nil, err
		}
		count++
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
			if count <= len(nils) {
				return nils[:count:count], nil
			}
			return make([]any, count), nil
		default:
			return nil, p.fail("expected ',' or ']'")
		}
	}
}

// rawKey reads an object's key and the colon after it as key does, but
// returns the key's bytes in the document rather than a string of them
// (decoded, in a copy, when it has escapes or is not ASCII).
func (p *jsonParser) rawKey() ([]byte, error) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, p.fail("expected a string key")
	}
	var k []byte
	if end := plainRun(p.b, p.i+1, true); end < len(p.b) && p.b[end] == '"' {
		k = p.b[p.i+1 : end]
		p.i = end + 1
	} else {
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		k = []byte(s)
	}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return nil, p.fail("expected ':'")
	}
	p.i++
	return k, nil
}
