package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// Set is the compiled emit list of one connector. It is immutable after
// Compile, and Apply is safe for concurrent use.
type Set struct {
	connector    string
	rules        []*rule
	catalog      *catalog.Catalog
	needPosition bool
	// paths and allPayload are what the expressions read of payloads
	// (PayloadPaths).
	paths      []core.PayloadPath
	allPayload bool
	// states recycles the per-call scratch space (an expr VM, the
	// expression environment, an encoding buffer), so that Apply does not
	// allocate them per change and concurrent calls never share one.
	states sync.Pool
}

// rule is one compiled rule. A nil program means the expression was empty.
type rule struct {
	name         string
	typ          string
	when         *program
	subject      *program
	partitionKey *program
	// keyIsSubject says the partition key's expression is the subject's:
	// the subject's value serves as both.
	keyIsSubject  bool
	time          *program
	source        *program
	defaultSource string
	data          *dataNode
	dataSchema    string
	validate      bool
	// fields pre-checks a data mapping's values against the type's schema
	// without building the object; nil unless the data is a mapping and
	// validated.
	fields *catalog.Fields
}

type dataKind uint8

const (
	dataConst dataKind = iota
	dataExpr
	dataObject
	dataArray
)

// dataNode is a compiled data shape: a constant, an expression, or a mapping
// or list of nodes.
type dataNode struct {
	kind  dataKind
	field string // path below the rule, for errors: "data.total"
	konst any
	prog  *program
	// keys are sorted, and keyJSON holds each key encoded with its colon.
	keys     []string
	keyJSON  [][]byte
	children []*dataNode
}

// nameRe is what rule names look like.
var nameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// Compile compiles the emit rules rs of connector. When cat declares any
// type, every rule's type must be one of them and its data is validated
// against the type's schema; with a nil or empty catalog, rules may emit any
// well-formed type, unvalidated.
//
// The error joins a *core.FieldError for every problem found, its Path
// relative to the connector's emit list: "[0].name", "[1].type",
// "[0].when", "[1].data.total". Expression errors carry expr's message and
// the column where the problem is.
func Compile(connector string, rs []core.Rule, cat *catalog.Catalog) (*Set, error) {
	c := &compiler{idents: map[string]bool{}}
	s := &Set{connector: connector, catalog: cat}
	names := make(map[string]int, len(rs))
	for i, r := range rs {
		at := fmt.Sprintf("[%d]", i)
		cr := &rule{name: r.Name, typ: r.Type, defaultSource: "/tributary/" + connector}

		switch {
		case r.Name == "":
			c.errorf(at+".name", "name is empty: give the rule a name such as order_accepted; it is part of every event id the rule emits")
		case !nameRe.MatchString(r.Name):
			c.errorf(at+".name", "name %q may hold only lowercase letters, digits and '_', such as order_accepted", r.Name)
		default:
			if j, dup := names[r.Name]; dup {
				c.errorf(at+".name", "name %q is used twice in this connector, also at [%d]: names must be unique, they are part of event ids", r.Name, j)
			} else {
				names[r.Name] = i
			}
		}

		switch {
		case r.Type == "":
			c.errorf(at+".type", "type is empty: name the event type the rule emits, such as com.acme.order.accepted")
		case cat.Len() > 0 && !cat.Has(r.Type):
			c.errorf(at+".type", "type %q is not in the catalog: declare it there, or use one of %s", r.Type, typeList(cat))
		case cat.Len() == 0 && !catalog.ValidTypeName(r.Type):
			c.errorf(at+".type", "type %q is not a lowercase reverse-DNS dotted name, such as com.acme.order.accepted", r.Type)
		case cat.Has(r.Type):
			cr.validate = true
			cr.dataSchema = cat.DataSchema(r.Type)
		}

		if r.When != "" {
			cr.when = c.compile(at+".when", r.When, expr.AsBool())
		}
		if r.Subject != "" {
			cr.subject = c.compile(at+".subject", r.Subject)
		}
		switch {
		case r.PartitionKey != "" && strings.TrimSpace(r.PartitionKey) == strings.TrimSpace(r.Subject):
			// The usual case of both naming the business key: computed
			// once per event, for both.
			cr.keyIsSubject = true
		case r.PartitionKey != "":
			cr.partitionKey = c.compile(at+".partition_key", r.PartitionKey)
		}
		if r.Time != "" {
			cr.time = c.compile(at+".time", r.Time)
		}
		switch {
		case r.Source == "":
		case looksLikeURI(r.Source):
			// A URI reference such as /erp/orders or urn:acme:erp is
			// taken literally; anything else is an expression.
			cr.defaultSource = r.Source
		default:
			cr.source = c.compile(at+".source", r.Source)
		}
		if r.Data != nil {
			cr.data = c.compileData(at, "data", r.Data)
			if cr.validate && cr.data.kind == dataObject {
				cr.fields = cat.Fields(r.Type, cr.data.keys)
			}
		}
		s.rules = append(s.rules, cr)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	s.needPosition = c.idents["position"]
	for _, code := range c.codes {
		s.usePayload(code)
	}
	s.paths = mergePaths(s.paths)
	s.states.New = func() any { return new(state) }
	return s, nil
}

// Len returns the number of rules.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Connector returns the name of the connector the rules belong to.
func (s *Set) Connector() string { return s.connector }

func typeList(cat *catalog.Catalog) string {
	var names []string
	for _, t := range cat.Types() {
		names = append(names, strconv.Quote(t.Type))
	}
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return strings.Join(names, ", ")
}

type compiler struct {
	errs   []error
	idents map[string]bool
	// codes are the expressions compiled, for PayloadPaths.
	codes []string
}

func (c *compiler) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, core.FieldErrorf(path, format, args...))
}

// options returns the expr options every expression compiles with.
func (c *compiler) options() []expr.Option {
	opts := []expr.Option{
		expr.Env(env{}),
		expr.Patch(&numberPatcher{idents: c.idents}),
		// Bound expression size: a rule is a line or two, never a program.
		expr.MaxNodes(2000),
	}
	return append(opts, functions()...)
}

// compile compiles one expression, recording an error at path on failure.
func (c *compiler) compile(path, code string, extra ...expr.Option) (prog *program) {
	defer func() {
		// expr may panic on input it does not anticipate; a broken
		// expression must be an error, never a crash of the sidecar.
		if r := recover(); r != nil {
			c.errorf(path, "expression %s does not compile: %v", quoteExpr(code), r)
			prog = nil
		}
	}()
	p, err := expr.Compile(code, append(c.options(), extra...)...)
	if err != nil {
		c.errs = append(c.errs, &core.FieldError{Path: path, Err: compileError(path, code, err)})
		return nil
	}
	c.codes = append(c.codes, code)
	return newProgram(code, p)
}

// program is a compiled expression. An expression that only reads one
// field of a record (after.total, before.id, key.id, meta.file) is read
// directly, without the VM: most of a mapping is such fields, and the
// result is the same, nil for a missing field or a nil record included.
type program struct {
	prog  *vm.Program
	root  int8 // a mapRoot, or noRoot
	field string
	// fast evaluates common simple expressions without the VM; nil when
	// the expression is beyond it.
	fast *fastExpr
}

const (
	noRoot int8 = iota - 1
	rootKey
	rootBefore
	rootAfter
	rootMeta
)

var mapRoots = map[string]int8{"key": rootKey, "before": rootBefore, "after": rootAfter, "meta": rootMeta}

func newProgram(code string, p *vm.Program) *program {
	pr := &program{prog: p, root: noRoot}
	tree, err := parser.Parse(code)
	if err != nil {
		return pr
	}
	pr.fast = newFastExpr(tree.Node)
	m, ok := tree.Node.(*ast.MemberNode)
	if !ok || m.Method {
		return pr
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return pr
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return pr
	}
	if r, ok := mapRoots[id.Value]; ok {
		pr.root, pr.field, pr.fast = r, prop.Value, nil
	}
	return pr
}

// run evaluates p against the state's environment.
func (p *program) run(st *state) (any, error) {
	var m map[string]any
	switch p.root {
	case noRoot:
		if p.fast != nil {
			if v, ok := p.fast.value(&st.env); ok {
				return v, nil
			}
		}
		return st.vm.Run(p.prog, &st.env)
	case rootKey:
		m = st.env.Key
	case rootBefore:
		m = st.env.Before
	case rootAfter:
		m = st.env.After
	case rootMeta:
		m = st.env.Meta
	}
	return m[p.field], nil
}

// compileError turns expr's error into one line naming the column.
func compileError(path, code string, err error) error {
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message + " " + position(code, fe)
	}
	hint := ""
	if strings.HasSuffix(path, ".source") && looksLikeURI(code) {
		hint = fmt.Sprintf(`; source is an expression: write a constant as a quoted string, such as '"%s"'`, code)
	} else if strings.Contains(msg, "unknown name") || strings.Contains(msg, "undefined") {
		hint = "; expressions see op, key, before, after, payload, meta, source, position and connector; a constant string needs quotes"
	}
	return fmt.Errorf("expression %s does not compile: %s%s", quoteExpr(code), msg, hint)
}

// position returns "(column N)" or "(line L, column N)" for fe, 1-based.
func position(code string, fe *file.Error) string {
	if strings.Contains(code, "\n") && fe.Line > 1 {
		return fmt.Sprintf("(line %d, column %d)", fe.Line, fe.Column+1)
	}
	return fmt.Sprintf("(column %d)", fe.Column+1)
}

func looksLikeURI(s string) bool {
	if strings.HasPrefix(s, "/") {
		return true
	}
	if i := strings.Index(s, ":"); i > 0 {
		scheme := s[:i]
		return strings.Trim(scheme, "abcdefghijklmnopqrstuvwxyz0123456789+.-") == ""
	}
	return false
}

// quoteExpr quotes an expression for a message, shortened when long.
func quoteExpr(code string) string {
	const max = 120
	if len(code) > max {
		code = code[:max] + "..."
	}
	return strconv.Quote(code)
}

// compileData compiles a data shape at path below the rule at.
func (c *compiler) compileData(at, field string, v any) *dataNode {
	path := at + "." + field
	switch x := v.(type) {
	case string:
		return &dataNode{kind: dataExpr, field: field, prog: c.compile(path, x)}
	case map[string]any:
		return c.compileObject(at, field, x)
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				c.errorf(path, "key %v is a %T: data keys must be strings", k, k)
				continue
			}
			m[ks] = e
		}
		return c.compileObject(at, field, m)
	case []any:
		n := &dataNode{kind: dataArray, field: field}
		for i, e := range x {
			n.children = append(n.children, c.compileData(at, fmt.Sprintf("%s[%d]", field, i), e))
		}
		return n
	case nil, bool, int, int64, uint64, float64, int32, float32, uint, uint32:
		k, err := catalog.Normalize(x)
		if err != nil {
			c.errorf(path, "constant %v: %v", x, err)
		}
		return &dataNode{kind: dataConst, field: field, konst: k}
	}
	c.errorf(path, "data holds a %T: write an expression (a string), a constant, a mapping or a list", v)
	return &dataNode{kind: dataConst, field: field}
}

func (c *compiler) compileObject(at, field string, m map[string]any) *dataNode {
	n := &dataNode{kind: dataObject, field: field}
	for k := range m {
		n.keys = append(n.keys, k)
	}
	slices.Sort(n.keys)
	for _, k := range n.keys {
		kj := core.AppendJSONString(nil, k, false)
		n.keyJSON = append(n.keyJSON, append(kj, ':'))
		n.children = append(n.children, c.compileData(at, field+"."+k, m[k]))
	}
	return n
}
