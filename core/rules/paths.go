package rules

import (
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/tributary/tributary/core"
)

// payloadUse is what one expression reads of the payload: the paths of
// fields it follows (payload.order.id), those of which it reads only the
// length (len(payload.order.lines)), or all of it (payload as a whole,
// $env, or anything the analysis does not follow).
type payloadUse struct {
	all   bool
	paths []core.PayloadPath
}

// analysePayload returns what code reads of the payload. A path reached
// through an index, an optional chain or a method (payload.lines[0],
// payload.order?.id) counts as reading the whole of its longest plain
// prefix (payload.lines, payload.order).
func analysePayload(code string) payloadUse {
	tree, err := parser.Parse(code)
	if err != nil {
		return payloadUse{all: true}
	}
	var (
		use     payloadUse
		members []*ast.MemberNode
		lens    = map[ast.Node]bool{} // path arguments of len()
		roots   []*ast.IdentifierNode // every payload and $env identifier
	)
	ast.Find(tree.Node, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.MemberNode:
			members = append(members, x)
		case *ast.BuiltinNode:
			if x.Name == "len" && len(x.Arguments) == 1 {
				lens[x.Arguments[0]] = true
			}
		case *ast.CallNode:
			if id, ok := x.Callee.(*ast.IdentifierNode); ok && id.Value == "len" && len(x.Arguments) == 1 {
				lens[x.Arguments[0]] = true
			}
		case *ast.IdentifierNode:
			if x.Value == "payload" || x.Value == "$env" {
				roots = append(roots, x)
			}
		}
		return false
	})
	// inner holds the member nodes that are the object of a longer plain
	// path: only the longest plain path of a chain is a use.
	inner := map[ast.Node]bool{}
	for _, m := range members {
		if payloadPath(m) != nil {
			inner[m.Node] = true
		}
	}
	covered := map[*ast.IdentifierNode]bool{}
	for _, m := range members {
		path := payloadPath(m)
		if path == nil || inner[m] {
			continue
		}
		use.paths = append(use.paths, core.PayloadPath{Fields: path, LenOnly: lens[m]})
		covered[rootOf(m)] = true
	}
	for _, id := range roots {
		if !covered[id] {
			return payloadUse{all: true}
		}
	}
	return use
}

// rootOf returns the identifier a member chain starts from.
func rootOf(m *ast.MemberNode) *ast.IdentifierNode {
	var n ast.Node = m
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			n = x.Node
		case *ast.IdentifierNode:
			return x
		default:
			return nil
		}
	}
}

// PayloadPaths returns the paths into Change.Payload that the set's
// expressions read (see core.PayloadPath), merged: a path read whole
// covers the paths below it, and a path read both whole and by length is
// read whole. all is true when some expression reads the payload in a way
// paths do not describe; a source must then build whole payloads. A nil
// Set reads nothing.
func (s *Set) PayloadPaths() (paths []core.PayloadPath, all bool) {
	if s == nil {
		return nil, false
	}
	return s.paths, s.allPayload
}

// usePayload adds what code reads of the payload to the set's paths.
func (s *Set) usePayload(code string) {
	u := analysePayload(code)
	if u.all {
		s.allPayload = true
	}
	s.paths = append(s.paths, u.paths...)
}

// mergePaths sorts paths and drops those a whole read of an enclosing (or
// equal) path covers; a length read of a path also read whole is dropped.
func mergePaths(paths []core.PayloadPath) []core.PayloadPath {
	slices.SortFunc(paths, func(a, b core.PayloadPath) int {
		if c := slices.Compare(a.Fields, b.Fields); c != 0 {
			return c
		}
		// The whole read first, so that it covers the length read.
		switch {
		case a.LenOnly == b.LenOnly:
			return 0
		case !a.LenOnly:
			return -1
		}
		return 1
	})
	var out []core.PayloadPath
	for _, p := range paths {
		if slices.ContainsFunc(out, func(q core.PayloadPath) bool {
			return !q.LenOnly && hasPrefix(p.Fields, q.Fields) ||
				q.LenOnly && p.LenOnly && slices.Equal(p.Fields, q.Fields)
		}) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func hasPrefix(p, prefix []string) bool {
	return len(p) >= len(prefix) && slices.Equal(p[:len(prefix)], prefix)
}
