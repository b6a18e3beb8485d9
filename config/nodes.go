package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits that keep hostile documents (alias bombs, deep nesting) from
// exhausting memory or the stack.
const (
	maxDepth    = 100
	maxVisits   = 1 << 16
	maxProblems = 100
)

// pair is one key and value of a mapping node.
type pair struct{ key, value *yaml.Node }

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

// isMerge reports whether k is the YAML merge key "<<".
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// isNull reports whether n is absent or an explicit null ("key:" or "~").
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// pairs returns the key/value pairs of mapping m in order, followed by the
// pairs that merge keys ("<<: *base") bring in and that m does not override.
// Results are cached per node, so chains of merges cost their size once
// instead of multiplying.
func (l *loader) pairs(m *yaml.Node) []pair {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	if ps, ok := l.pairCache[m]; ok {
		return ps // an entry still being built (a merge cycle) reads as empty
	}
	l.pairCache[m] = nil
	var out []pair
	var merges []*yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if isMerge(k) {
			merges = append(merges, v)
			continue
		}
		out = append(out, pair{k, v})
		seen[k.Value] = true
	}
	for _, v := range merges {
		v = deref(v)
		var sources []*yaml.Node
		switch {
		case v == nil:
		case v.Kind == yaml.MappingNode:
			sources = []*yaml.Node{v}
		case v.Kind == yaml.SequenceNode:
			sources = v.Content
		}
		for _, s := range sources {
			for _, p := range l.pairs(s) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					out = append(out, p)
				}
			}
		}
	}
	l.pairCache[m] = out
	return out
}

// lookup returns the pair of mapping m whose key is name.
func (l *loader) lookup(m *yaml.Node, name string) (pair, bool) {
	for _, p := range l.pairs(m) {
		if p.key.Kind == yaml.ScalarNode && p.key.Value == name {
			return p, true
		}
	}
	return pair{}, false
}

// position returns where a problem about the value of key should point: at
// the value when it fits on the key's line (a scalar or a flow collection),
// otherwise at the key.
func position(key, value *yaml.Node) (line, col int) {
	switch {
	case key != nil && (value == nil || value.Kind == yaml.MappingNode && value.Style&yaml.FlowStyle == 0 ||
		value.Kind == yaml.SequenceNode && value.Style&yaml.FlowStyle == 0):
		return key.Line, key.Column
	case value != nil:
		return value.Line, value.Column
	case key != nil:
		return key.Line, key.Column
	}
	return 0, 0
}

// segment is one step of a field path: a mapping key or a list index.
type segment struct {
	key   string
	index int
	isIdx bool
}

// parsePath splits "tables[2].name" into its segments. Malformed brackets
// end the path early.
func parsePath(path string) []segment {
	var out []segment
	for path != "" {
		switch {
		case path[0] == '.':
			path = path[1:]
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return out
			}
			i, err := strconv.Atoi(path[1:end])
			if err != nil {
				return out
			}
			out = append(out, segment{index: i, isIdx: true})
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			out = append(out, segment{key: path[:end]})
			path = path[end:]
		}
	}
	return out
}

// locate finds the node a field path names below root. When the path goes
// further than the document, it returns the deepest node that exists, so a
// problem about a missing field points at its nearest existing ancestor.
func (l *loader) locate(root *yaml.Node, path string) (key, value *yaml.Node) {
	value = root
	for _, s := range parsePath(path) {
		n := deref(value)
		if n == nil {
			break
		}
		if s.isIdx {
			if n.Kind != yaml.SequenceNode || s.index < 0 || s.index >= len(n.Content) {
				break
			}
			key, value = nil, n.Content[s.index]
			continue
		}
		p, ok := l.lookup(n, s.key)
		if !ok {
			break
		}
		key, value = p.key, p.value
	}
	return key, value
}

// joinPath appends a child path (a key such as "tls.cert_file" or an index
// such as "[2].name") to a parent path.
func joinPath(parent, child string) string {
	switch {
	case child == "":
		return parent
	case parent == "":
		return child
	case strings.HasPrefix(child, "["):
		return parent + child
	}
	return parent + "." + child
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
	n = deref(n)
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	}
	return strconv.Quote(n.Value)
}
