package rules

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/tributary/tributary/core"
)

// EventProgram is a compiled expression over an event: a sink's when, or
// one of a sink's expression-valued keys (an HTTP sink's url, a header).
// It is immutable, and its methods are safe for concurrent use.
type EventProgram struct {
	path string
	prog *vm.Program
	// readsData says the expression reads event.data, which is then
	// decoded before it runs.
	readsData bool
	// direct reads the expression's value without the VM when it only
	// names a variable or a field below event.data; nil otherwise.
	direct *eventPath
	// envs recycles the environments of Eval, which has none from its
	// caller.
	envs sync.Pool
}

// CompileEvent compiles code, an expression over an event (see the
// package doc for the variables it sees), and type-checks it. path names
// where the expression is in the configuration, such as "sinks[0].when";
// it prefixes every error. The error is a *core.FieldError at path whose
// message names the column of the problem.
func CompileEvent(path, code string) (*EventProgram, error) {
	return compileEvent(path, code)
}

// CompileEventCondition compiles code as CompileEvent does, and checks
// that it gives a boolean, as a sink's when must: an expression whose type
// is known not to be boolean, such as event.type or len(event.id), is a
// compile error. A value of the data has no type until it runs, so a
// condition such as event.data.flag is checked when it runs. Use Holds to
// run it.
func CompileEventCondition(path, code string) (*EventProgram, error) {
	return compileEvent(path, code, expr.AsBool())
}

func compileEvent(path, code string, extra ...expr.Option) (p *EventProgram, err error) {
	if strings.TrimSpace(code) == "" {
		return nil, core.FieldErrorf(path, "expression is empty: write one over the event, such as event.data.order_id; expressions see %s", eventVarNames)
	}
	defer func() {
		// expr may panic on input it does not anticipate; a broken
		// expression must be an error, never a crash of the sidecar.
		if r := recover(); r != nil {
			p, err = nil, core.FieldErrorf(path, "expression %s does not compile: %v", quoteExpr(code), r)
		}
	}()
	patcher := &eventPatcher{}
	opts := []expr.Option{
		expr.Env(eventVars{}),
		expr.Patch(patcher),
		expr.MaxNodes(2000),
	}
	opts = append(append(opts, functions()...), extra...)
	prog, err := expr.Compile(code, opts...)
	if err != nil {
		return nil, &core.FieldError{Path: path, Err: eventCompileError(code, err, patcher.changed)}
	}
	p = &EventProgram{path: path, prog: prog, readsData: true}
	if tree, err := parser.Parse(code); err == nil {
		var r dataReads
		ast.Walk(&tree.Node, &r)
		if r.events > r.attributes+r.data {
			return nil, core.FieldErrorf(path, "expression %s reads the event whole: read its attributes, such as event.data or event.type; expressions see %s", quoteExpr(code), eventVarNames)
		}
		p.readsData = r.data > 0
		p.direct = newEventPath(tree.Node)
	}
	p.envs.New = func() any { return new(EventEnv) }
	return p, nil
}

// Eval evaluates p on ev, delivered by the sink named sink, and returns
// its value as the expression gives it: a string, a bool, a json.Number
// from the data, a time.Time, a map or list of the data... A program that
// runs once per event may use Eval; several programs over one event
// should share an EventEnv and use EvalEnv, which decodes the data once.
//
// A failure is an *EventError; errors.As finds a *DeadLetterError in it
// when the expression called deadLetter.
func (p *EventProgram) Eval(ev *core.Event, sink string) (any, error) {
	e := p.envs.Get().(*EventEnv)
	e.Reset(ev, sink)
	v, err := p.EvalEnv(e)
	e.Reset(nil, "")
	p.envs.Put(e)
	return v, err
}

// EvalEnv evaluates p in e, as Eval does.
func (p *EventProgram) EvalEnv(e *EventEnv) (any, error) {
	if p.readsData {
		if err := e.loadData(); err != nil {
			return nil, &EventError{Path: p.path, EventID: e.eventID(), Err: err}
		}
	}
	if p.direct != nil {
		if v, ok := p.direct.read(e); ok {
			return v, nil
		}
	}
	v, err := e.vm.Run(p.prog, &e.vars)
	if err != nil {
		return nil, p.runError(e, err)
	}
	return v, nil
}

// Holds evaluates p in e and returns its boolean value. It fails when the
// value is not a boolean, which a program compiled by
// CompileEventCondition never gives.
func (p *EventProgram) Holds(e *EventEnv) (bool, error) {
	v, err := p.EvalEnv(e)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, &EventError{Path: p.path, EventID: e.eventID(), Err: fmt.Errorf("gave %s, not a boolean; compare it, such as event.data.flag == \"Y\", or convert it with bool(...)", describe(v))}
	}
	return b, nil
}

// Text evaluates p in e and renders its value as text, by the rules of
// string(x): numbers exactly, times in RFC 3339, nil as "". An object or a
// list is an error. It suits expressions that make a URL or a header.
func (p *EventProgram) Text(e *EventEnv) (string, error) {
	v, err := p.EvalEnv(e)
	if err != nil {
		return "", err
	}
	var s string
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		err = errors.New("value is an object; it must be a string, a number or a boolean")
	case []any:
		err = errors.New("value is a list; it must be a string, a number or a boolean")
	default:
		s, err = toString(v)
	}
	if err != nil {
		return "", &EventError{Path: p.path, EventID: e.eventID(), Err: err}
	}
	return s, nil
}

// Path returns where the expression is in the configuration, as given to
// CompileEvent.
func (p *EventProgram) Path() string { return p.path }

// runError turns a failure of the VM into an *EventError.
func (p *EventProgram) runError(e *EventEnv, err error) error {
	ee := &EventError{Path: p.path, EventID: e.eventID(), Err: err}
	var dl *DeadLetterError
	if errors.As(err, &dl) {
		ee.Err = dl
		return ee
	}
	var fe *file.Error
	if errors.As(err, &fe) {
		ee.Column = fe.Column + 1
		msg := fe.Message
		if strings.HasPrefix(msg, "cannot fetch ") && strings.HasSuffix(msg, " from <nil>") {
			msg += "; read optional fields with ?., such as event.data?.customer?.name, to get nil instead"
		}
		ee.Err = &exprError{msg: msg, prev: fe.Prev}
	}
	return ee
}

// EventError reports an expression over an event that failed at run time:
// a missing field, a conversion that cannot be done, data that is not
// JSON, or a call of deadLetter (errors.As then finds a *DeadLetterError).
// A sink dead-letters the event with it.
type EventError struct {
	// Path is where the expression is in the configuration, such as
	// "sinks[0].map.total".
	Path string
	// Column is the 1-based column in the expression where it failed, or 0.
	Column int
	// EventID is the id of the event the expression ran on.
	EventID string
	Err     error
}

func (e *EventError) Error() string {
	var dl *DeadLetterError
	if errors.As(e.Err, &dl) {
		return fmt.Sprintf("event %s: %s: dead-lettered: %s", e.EventID, e.Path, dl.Reason)
	}
	if e.Column > 0 {
		return fmt.Sprintf("event %s: %s, column %d: %v", e.EventID, e.Path, e.Column, e.Err)
	}
	return fmt.Sprintf("event %s: %s: %v", e.EventID, e.Path, e.Err)
}

func (e *EventError) Unwrap() error { return e.Err }

// eventPatcher is the numberPatcher of expressions over an event, which
// leaves changed(...) alone: a sink sees one event, not a change's before
// and after.
type eventPatcher struct {
	numberPatcher
	changed bool
}

// Visit implements ast.Visitor.
func (p *eventPatcher) Visit(node *ast.Node) {
	if c, ok := (*node).(*ast.CallNode); ok {
		if id, ok := c.Callee.(*ast.IdentifierNode); ok && id.Value == "changed" {
			p.changed = true
			return
		}
	}
	p.numberPatcher.Visit(node)
}

// eventCompileError turns expr's error into one line naming the column,
// with a hint at what expressions over an event see.
func eventCompileError(code string, err error, changed bool) error {
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message + " " + position(code, fe)
	}
	hint := ""
	switch {
	case changed:
		hint = "; changed() compares a change's before and after, which a sink does not see: compare fields of event.data instead"
	case strings.Contains(msg, "rules.eventAttrs has no field"):
		msg = strings.Replace(msg, "type rules.eventAttrs has no field", "event has no attribute", 1)
		hint = "; expressions see " + eventVarNames + "; the event's own fields are below event.data, such as event.data.order_id"
	case strings.Contains(msg, "unknown name") || strings.Contains(msg, "undefined"):
		hint = "; expressions see " + eventVarNames + "; a constant string needs quotes"
	}
	return fmt.Errorf("expression %s does not compile: %s%s", quoteExpr(code), msg, hint)
}

// dataReads counts, in an expression's tree, the references to the event
// variable, those that read its data and those that read another of its
// attributes: the data is decoded only for an expression that reads it,
// and the event is never read whole.
type dataReads struct {
	events, data, attributes int
}

// Visit implements ast.Visitor.
func (r *dataReads) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "event" {
			r.events++
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		prop, isStr := n.Property.(*ast.StringNode)
		switch {
		case !ok || !isStr || id.Value != "event":
		case prop.Value == "data":
			r.data++
		default:
			r.attributes++
		}
	}
}

// The variables an eventPath reads.
const (
	pathSink int8 = iota
	pathID
	pathType
	pathSource
	pathSubject
	pathTime
	pathData
	pathPartitionKey
	pathDataSchema
	pathDataContentType
)

var eventAttrPaths = map[string]int8{
	"id": pathID, "type": pathType, "source": pathSource, "subject": pathSubject,
	"time": pathTime, "data": pathData, "partitionkey": pathPartitionKey,
	"dataschema": pathDataSchema, "datacontenttype": pathDataContentType,
}

// eventPath is an expression that names a variable (sink, event.type) or a
// field below event.data (event.data.order_id, event.data?.customer?.id,
// event.data["Order No"]): most of a mapping. It is read directly, without
// the VM, whenever every step finds an object; anything else (a missing
// object, a list) goes to the VM, which keeps the final word.
type eventPath struct {
	attr int8
	// fields are the fields below event.data, and optional says which
	// were read with ?.
	fields   []string
	optional []bool
}

// newEventPath returns the eventPath of an expression's parsed tree, or nil
// when the expression is not one.
func newEventPath(n ast.Node) *eventPath {
	if c, ok := n.(*ast.ChainNode); ok {
		n = c.Node
	}
	var fields []string
	var optional []bool
	for {
		switch x := n.(type) {
		case *ast.MemberNode:
			prop, ok := x.Property.(*ast.StringNode)
			if !ok || x.Method {
				return nil
			}
			fields = append(fields, prop.Value)
			optional = append(optional, x.Optional)
			n = x.Node
			continue
		case *ast.IdentifierNode:
			switch {
			case x.Value == "sink" && len(fields) == 0:
				return &eventPath{attr: pathSink}
			case x.Value != "event" || len(fields) == 0:
				return nil
			}
		default:
			return nil
		}
		break
	}
	// fields run from the last step to the first: the first is the
	// attribute.
	last := len(fields) - 1
	attr, ok := eventAttrPaths[fields[last]]
	if !ok || (attr != pathData && last > 0) {
		return nil
	}
	p := &eventPath{attr: attr}
	for i := last - 1; i >= 0; i-- {
		p.fields = append(p.fields, fields[i])
		p.optional = append(p.optional, optional[i])
	}
	return p
}

// read returns the value p names in e. ok is false when the VM must decide.
func (p *eventPath) read(e *EventEnv) (v any, ok bool) {
	a := &e.vars.Event
	switch p.attr {
	case pathSink:
		return e.vars.Sink, true
	case pathID:
		return a.ID, true
	case pathType:
		return a.Type, true
	case pathSource:
		return a.Source, true
	case pathSubject:
		return a.Subject, true
	case pathTime:
		return a.Time, true
	case pathPartitionKey:
		return a.PartitionKey, true
	case pathDataSchema:
		return a.DataSchema, true
	case pathDataContentType:
		return a.DataContentType, true
	}
	v = a.Data
	for i, f := range p.fields {
		switch m := v.(type) {
		case map[string]any:
			v = m[f]
		case nil:
			// event.data?.a.b on no data is nil; event.data.a fails,
			// and the VM says how.
			return nil, p.optional[i]
		default:
			return nil, false
		}
	}
	return v, true
}
