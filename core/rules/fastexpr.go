package rules

import (
	"slices"

	"github.com/expr-lang/expr/ast"
)

// fastExpr evaluates, without the VM, the expressions rules write most:
// string and boolean constants, op, connector and position, a record
// whole (key, before, after or meta, as a rule's data often is), a field of key,
// before, after or meta, a path of fields into payload (payload.order.id),
// len(...) of such a path, string(...) of those, and ==, !=, +, &&, || and
// ! over them, such as
//
//	op == "create" && after.status == "NEW"
//	"orders/" + string(after.order_id)
//	payload.event == "order.placed"
//
// It answers only when every value met has the kind the operator wants:
// strings for ==, != and +, booleans for &&, || and !. Otherwise ok is
// false and the VM runs the expression, so the VM keeps the final word on
// every other case (numbers, nil, errors). Expressions have no side
// effects, so running one again is harmless.
type fastExpr struct {
	op    fastOp
	str   string   // the constant of fastString
	bool  bool     // the constant of fastBool
	root  int8     // the record of fastField, a mapRoot
	field string   // the field of fastField
	path  []string // the fields of fastPayload, outermost first
	l, r  *fastExpr
}

type fastOp uint8

const (
	fastString fastOp = iota
	fastBool
	fastOpVar
	fastConnector
	fastPosition
	fastField
	fastEq
	fastNe
	fastConcat
	fastAnd
	fastOr
	fastNot
	fastToString
	fastPayload
	fastLen
	fastRecord
)

// newFastExpr compiles the parsed tree of an expression that compiled, or
// returns nil when it holds anything fastExpr does not handle.
func newFastExpr(n ast.Node) *fastExpr {
	switch x := n.(type) {
	case *ast.StringNode:
		return &fastExpr{op: fastString, str: x.Value}
	case *ast.BoolNode:
		return &fastExpr{op: fastBool, bool: x.Value}
	case *ast.IdentifierNode:
		switch x.Value {
		case "op":
			return &fastExpr{op: fastOpVar}
		case "connector":
			return &fastExpr{op: fastConnector}
		case "position":
			return &fastExpr{op: fastPosition}
		}
		if r, ok := mapRoots[x.Value]; ok {
			return &fastExpr{op: fastRecord, root: r}
		}
	case *ast.MemberNode:
		if path := payloadPath(x); path != nil {
			return &fastExpr{op: fastPayload, path: path}
		}
		id, ok := x.Node.(*ast.IdentifierNode)
		prop, isStr := x.Property.(*ast.StringNode)
		if !ok || !isStr || x.Optional || x.Method {
			return nil
		}
		if r, ok := mapRoots[id.Value]; ok {
			return &fastExpr{op: fastField, root: r, field: prop.Value}
		}
	case *ast.CallNode:
		if id, ok := x.Callee.(*ast.IdentifierNode); ok {
			return newFastCall(id.Value, x.Arguments)
		}
	case *ast.BuiltinNode:
		return newFastCall(x.Name, x.Arguments)
	case *ast.UnaryNode:
		if x.Operator != "!" && x.Operator != "not" {
			return nil
		}
		if e := newFastExpr(x.Node); e != nil {
			return &fastExpr{op: fastNot, l: e}
		}
	case *ast.BinaryNode:
		var op fastOp
		switch x.Operator {
		case "==":
			op = fastEq
		case "!=":
			op = fastNe
		case "+":
			op = fastConcat
		case "&&", "and":
			op = fastAnd
		case "||", "or":
			op = fastOr
		default:
			return nil
		}
		l, r := newFastExpr(x.Left), newFastExpr(x.Right)
		if l == nil || r == nil {
			return nil
		}
		return &fastExpr{op: op, l: l, r: r}
	}
	return nil
}

// payloadPath returns the fields of a path such as payload.order.id or
// payload["order"].id, outermost first, or nil when m is anything else.
func payloadPath(m *ast.MemberNode) []string {
	var rev []string
	var n ast.Node = m
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			prop, ok := x.Property.(*ast.StringNode)
			if !ok || x.Optional || x.Method {
				return nil
			}
			rev = append(rev, prop.Value)
			n = x.Node
			continue
		case *ast.IdentifierNode:
			if x.Value != "payload" {
				return nil
			}
			slices.Reverse(rev)
			return rev
		}
		return nil
	}
}

// newFastCall compiles string(x) and toString(x), the rules' own function
// which fastExpr calls directly, and len(x) of a payload path.
func newFastCall(name string, args []ast.Node) *fastExpr {
	if name == "len" && len(args) == 1 {
		if m, ok := args[0].(*ast.MemberNode); ok {
			if path := payloadPath(m); path != nil {
				return &fastExpr{op: fastLen, l: &fastExpr{op: fastPayload, path: path}}
			}
		}
		return nil
	}
	if (name != "string" && name != "toString") || len(args) != 1 {
		return nil
	}
	if e := newFastExpr(args[0]); e != nil {
		return &fastExpr{op: fastToString, l: e}
	}
	return nil
}

// value evaluates e. ok is false when the VM must decide.
func (e *fastExpr) value(en *env) (v any, ok bool) {
	switch e.op {
	case fastBool, fastEq, fastNe, fastAnd, fastOr, fastNot:
		b, ok := e.truth(en)
		return b, ok
	case fastField:
		return e.fieldValue(en), true
	case fastRecord:
		// The map as the VM hands it over: a nil record is a nil map in
		// the interface, as the VM reads the env's field.
		return e.record(en), true
	case fastPayload:
		return e.payloadValue(en)
	case fastLen:
		// len of a list or an object; the VM decides for strings (it
		// counts runes) and everything else.
		v, ok := e.l.payloadValue(en)
		if !ok {
			return nil, false
		}
		switch x := v.(type) {
		case []any:
			return len(x), true
		case map[string]any:
			return len(x), true
		}
		return nil, false
	}
	s, ok := e.text(en)
	return s, ok
}

// payloadValue follows e's path into the payload. It answers only when
// every step is an object holding the field, so that the VM keeps the
// final word on missing fields and on other kinds of values.
func (e *fastExpr) payloadValue(en *env) (any, bool) {
	v := en.Payload
	for _, f := range e.path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[f]; !ok {
			return nil, false
		}
	}
	return v, true
}

// text evaluates e when its value is a string.
func (e *fastExpr) text(en *env) (string, bool) {
	switch e.op {
	case fastString:
		return e.str, true
	case fastOpVar:
		return en.Op, true
	case fastConnector:
		return en.Connector, true
	case fastPosition:
		return en.Position, true
	case fastField:
		s, ok := e.fieldValue(en).(string)
		return s, ok
	case fastPayload:
		v, ok := e.payloadValue(en)
		if !ok {
			return "", false
		}
		s, ok := v.(string)
		return s, ok
	case fastToString:
		v, ok := e.l.value(en)
		if !ok {
			return "", false
		}
		s, err := toString(v)
		return s, err == nil
	case fastConcat:
		l, ok := e.l.text(en)
		if !ok {
			return "", false
		}
		r, ok := e.r.text(en)
		if !ok {
			return "", false
		}
		return l + r, true
	}
	return "", false
}

// truth evaluates e when its value is a boolean.
func (e *fastExpr) truth(en *env) (bool, bool) {
	switch e.op {
	case fastBool:
		return e.bool, true
	case fastField:
		b, ok := e.fieldValue(en).(bool)
		return b, ok
	case fastPayload:
		v, ok := e.payloadValue(en)
		if !ok {
			return false, false
		}
		b, ok := v.(bool)
		return b, ok
	case fastEq, fastNe:
		l, ok := e.l.text(en)
		if !ok {
			return false, false
		}
		r, ok := e.r.text(en)
		if !ok {
			return false, false
		}
		return (l == r) == (e.op == fastEq), true
	case fastAnd, fastOr:
		l, ok := e.l.truth(en)
		if !ok {
			return false, false
		}
		if l == (e.op == fastOr) {
			// false && ..., true || ...: the right side is not run.
			return l, true
		}
		return e.r.truth(en)
	case fastNot:
		b, ok := e.l.truth(en)
		return !b, ok
	}
	return false, false
}

func (e *fastExpr) fieldValue(en *env) any {
	return e.record(en)[e.field]
}

// record returns the record e.root names.
func (e *fastExpr) record(en *env) map[string]any {
	switch e.root {
	case rootKey:
		return en.Key
	case rootBefore:
		return en.Before
	case rootAfter:
		return en.After
	case rootMeta:
		return en.Meta
	}
	return nil
}
