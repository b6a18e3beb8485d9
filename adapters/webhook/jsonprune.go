package webhook

import (
	"github.com/tributary/tributary/core"
)

// pathNode is one level of the payload paths the connector's rules read
// (core.PayloadPruner): the fields below it that are read, and whether the
// value here is read whole or only by length.
type pathNode struct {
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
				c = &pathNode{}
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
func decodeJSONPruned(b []byte, root *pathNode) (any, error) {
	p := jsonParser{b: b, s: string(b)}
	v, err := p.pruned(root)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, p.fail("unexpected data after the JSON value")
	}
	return v, nil
}

// pruned parses one value as n says.
func (p *jsonParser) pruned(n *pathNode) (any, error) {
	if n == nil {
		p.skip = true
		_, err := p.value()
		p.skip = false
		return nil, err
	}
	if n.whole {
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
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		c := n.children[k]
		v, err := p.pruned(c)
		if err != nil {
			return nil, err
		}
		if c != nil || n.lenOnly {
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
	p.skip = true
	defer func() { p.skip = false }()
	for {
		if _, err := p.value(); err != nil {
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
