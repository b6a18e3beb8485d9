package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// EventData is a compiled mapping of an event to what a target takes (a
// sink's map): one expression, or a mapping, nested as deep as needed,
// whose leaves are expressions, as a rule's data is. It is immutable, and
// its methods are safe for concurrent use.
type EventData struct {
	root *eventNode
	envs sync.Pool
}

// eventNode is a compiled shape: a constant, an expression, or a mapping or
// list of nodes.
type eventNode struct {
	kind     dataKind
	konst    any
	prog     *EventProgram
	keys     []string // sorted, for a mapping
	children []*eventNode
}

// CompileEventData compiles data, a sink's map: a string is an expression
// (a constant string is quoted inside it: '"erp"'); a mapping's values and
// a list's items are compiled the same way, nested as deep as needed;
// numbers, booleans and null are constants. path names where the mapping
// is in the configuration, such as "sinks[0].map". The error joins a
// *core.FieldError for every problem found, at the path of the value that
// has it: "sinks[0].map.total", "sinks[0].map.lines[1]".
func CompileEventData(path string, data any) (*EventData, error) {
	if data == nil {
		return nil, core.FieldErrorf(path, "nothing to map: write an expression over the event, such as event.data, or a mapping of expressions, such as {order_id: event.data.id}")
	}
	var errs []error
	root := compileEventNode(path, data, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d := &EventData{root: root}
	d.envs.New = func() any { return new(EventEnv) }
	return d, nil
}

func compileEventNode(path string, v any, errs *[]error) *eventNode {
	switch x := v.(type) {
	case string:
		p, err := CompileEvent(path, x)
		if err != nil {
			*errs = append(*errs, err)
		}
		return &eventNode{kind: dataExpr, prog: p}
	case map[string]any:
		return compileEventObject(path, x, errs)
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				*errs = append(*errs, core.FieldErrorf(path, "key %v is a %T: keys of a mapping must be strings", k, k))
				continue
			}
			m[ks] = e
		}
		return compileEventObject(path, m, errs)
	case []any:
		n := &eventNode{kind: dataArray}
		for i, e := range x {
			n.children = append(n.children, compileEventNode(fmt.Sprintf("%s[%d]", path, i), e, errs))
		}
		return n
	case nil, bool, int, int64, uint64, float64, int32, float32, uint, uint32:
		k, err := catalog.Normalize(x)
		if err != nil {
			*errs = append(*errs, core.FieldErrorf(path, "constant %v: %v", x, err))
		}
		return &eventNode{kind: dataConst, konst: k}
	}
	*errs = append(*errs, core.FieldErrorf(path, "holds a %T: write an expression (a string), a constant, a mapping or a list", v))
	return &eventNode{kind: dataConst}
}

func compileEventObject(path string, m map[string]any, errs *[]error) *eventNode {
	n := &eventNode{kind: dataObject}
	for k := range m {
		n.keys = append(n.keys, k)
	}
	slices.Sort(n.keys)
	for _, k := range n.keys {
		n.children = append(n.children, compileEventNode(path+"."+k, m[k], errs))
	}
	return n
}

// Eval evaluates d on ev, delivered by the sink named sink, and returns a
// JSON-compatible value: maps, lists, strings, booleans, nil and numbers,
// exact numbers of the data kept as json.Number; times become RFC 3339
// strings and bytes base64, as in a rule's data. The value may share maps
// and lists with the decoded data; it must not be modified.
//
// A failure is an *EventError naming the path of the expression that
// failed; errors.As finds a *DeadLetterError in it when the expression
// called deadLetter.
func (d *EventData) Eval(ev *core.Event, sink string) (any, error) {
	e := d.envs.Get().(*EventEnv)
	e.Reset(ev, sink)
	v, err := d.EvalEnv(e)
	e.Reset(nil, "")
	d.envs.Put(e)
	return v, err
}

// EvalEnv evaluates d in e, as Eval does, sharing e's decoded data with
// the other programs evaluated in e.
func (d *EventData) EvalEnv(e *EventEnv) (any, error) {
	return d.root.eval(e)
}

func (n *eventNode) eval(e *EventEnv) (any, error) {
	switch n.kind {
	case dataConst:
		return n.konst, nil
	case dataExpr:
		v, err := n.prog.EvalEnv(e)
		if err != nil {
			return nil, err
		}
		if jsonValue(v, 0) {
			return v, nil
		}
		v, err = catalog.Normalize(v)
		if err != nil {
			return nil, &EventError{Path: n.prog.path, EventID: e.eventID(), Err: err}
		}
		return v, nil
	case dataObject:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := n.children[i].eval(e)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case dataArray:
		l := make([]any, len(n.children))
		for i, c := range n.children {
			v, err := c.eval(e)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return nil, fmt.Errorf("unknown data node kind %d", n.kind)
}

// jsonValue reports whether v is already what catalog.Normalize would make
// of it, so that values read from the decoded data are returned as they
// are rather than copied.
func jsonValue(v any, depth int) bool {
	switch x := v.(type) {
	case nil, string, bool, json.Number, int, int64:
		return true
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	case map[string]any:
		if x == nil || depth >= 100 {
			return false
		}
		for _, e := range x {
			if !jsonValue(e, depth+1) {
				return false
			}
		}
		return true
	case []any:
		if x == nil || depth >= 100 {
			return false
		}
		for _, e := range x {
			if !jsonValue(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
