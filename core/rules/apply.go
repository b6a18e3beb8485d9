package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// Result is the outcome of one rule whose `when` held (or failed) for a
// change.
type Result struct {
	// Rule is the rule's name.
	Rule string
	// Event is the event built, nil when Err is set.
	Event *core.Event
	// Data is the JSON-compatible value the event's data would have been
	// encoded from: it is set with a *catalog.ValidationError, and with a
	// *RuleError raised after the data was built. The dead-letter record
	// carries it. It is nil when Event is set, whose Data holds the
	// encoding: a data mapping is encoded from its values, without the
	// object being built.
	Data any
	// Err is a *RuleError when an expression failed at run time, a
	// *catalog.ValidationError when the data violates its type's schema,
	// or a *DeadLetterError when the change is dead-lettered on purpose.
	Err error
}

// InvalidRule is the Rule of the Result a change yields when its source
// could not read it (core.Change.Invalid): no rule runs on such a change.
const InvalidRule = "invalid"

// DeadLetterError sends a change to the dead-letter stream on purpose,
// with a reason: a rule's expression called deadLetter(reason), or (Rule
// InvalidRule) the source could not read the change, core.Change.Invalid.
type DeadLetterError struct {
	Connector string
	Rule      string
	// Field names the expression that called deadLetter, as in RuleError;
	// empty for an invalid change.
	Field string
	// Reason is the reason given to deadLetter, or the change's Invalid.
	Reason string
}

func (e *DeadLetterError) Error() string {
	if e.Rule == InvalidRule && e.Field == "" {
		return fmt.Sprintf("connector %q could not read the record: %s", e.Connector, e.Reason)
	}
	return fmt.Sprintf("rule %q of connector %q: %s: dead-lettered: %s", e.Rule, e.Connector, e.Field, e.Reason)
}

// RuleError reports an expression that failed at run time: a missing
// field, a conversion that cannot be done, a value of the wrong kind.
type RuleError struct {
	Connector string
	Rule      string
	// Field names the expression below the rule: "when", "subject",
	// "partition_key", "time", "source", "data" or "data.total".
	Field string
	// Column is the 1-based column in the expression where it failed, or 0.
	Column int
	Err    error
}

func (e *RuleError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("rule %q of connector %q: %s, column %d: %v", e.Rule, e.Connector, e.Field, e.Column, e.Err)
	}
	return fmt.Sprintf("rule %q of connector %q: %s: %v", e.Rule, e.Connector, e.Field, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// state is the scratch space of one Apply call.
type state struct {
	vm  vm.VM
	env env
	buf []byte
	// vals holds the values of a data mapping, one per key in key order,
	// while a rule is applied.
	vals []any
	// keys orders the rows encoded whole.
	keys keyOrder
}

// Apply runs every rule on ch, in order, and returns one Result per rule
// whose `when` holds or fails; rules whose `when` is false yield nothing.
// A change whose source could not read it (Invalid set) runs no rule and
// yields one Result, Rule InvalidRule, with a *DeadLetterError.
// Apply is safe for concurrent use. It never modifies ch, and the returned
// events and data share no memory with it except immutable strings.
func (s *Set) Apply(ch *core.Change) []Result {
	var out []Result
	s.Each(ch, func(res Result) {
		if out == nil {
			out = make([]Result, 0, len(s.rules))
		}
		out = append(out, res)
	})
	return out
}

// Each runs every rule on ch as Apply does and hands each Result to
// yield, in rule order, rather than collecting them.
func (s *Set) Each(ch *core.Change, yield func(Result)) {
	if s == nil || ch == nil {
		return
	}
	if ch.Invalid != "" {
		yield(Result{Rule: InvalidRule, Err: &DeadLetterError{Connector: s.connector, Rule: InvalidRule, Reason: ch.Invalid}})
		return
	}
	if len(s.rules) == 0 {
		return
	}
	st := s.states.Get().(*state)
	st.env.fill(s.connector, ch, s.needPosition)
	for _, r := range s.rules {
		if res, ok := s.apply(st, r, ch); ok {
			yield(res)
		}
	}
	st.env = env{}
	clear(st.vals)
	if cap(st.buf) > 1<<20 {
		st.buf = nil // do not keep one huge event's buffer forever
	}
	s.states.Put(st)
}

// apply runs rule r on ch. It reports false when r's `when` is false.
func (s *Set) apply(st *state, r *rule, ch *core.Change) (Result, bool) {
	a := applying{s: s, r: r, res: Result{Rule: r.name}}
	if r.when != nil {
		held, err := r.when.holds(st)
		if err != nil {
			return a.fail("when", err)
		}
		if !held {
			return a.res, false
		}
	}
	if r.data != nil {
		if field, err := a.evalData(st); err != nil {
			return a.fail(field, err)
		}
	}
	ev := &core.Event{
		ID:              core.EventID(s.connector, ch.Position, r.name),
		Source:          r.defaultSource,
		SpecVersion:     core.SpecVersion,
		Type:            r.typ,
		DataContentType: "application/json",
		DataSchema:      r.dataSchema,
	}
	if field, err := s.attributes(st, r, ch, ev); err != nil {
		return a.fail(field, err)
	}
	if r.validate && !r.fields.Valid(a.vals) {
		// Not certainly valid: the full validator decides, and explains.
		a.build()
		if err := s.catalog.Validate(r.typ, a.res.Data); err != nil {
			a.res.Err = err
			a.detach()
			return a.res, true
		}
	}
	if r.data != nil {
		var err error
		if ev.Data, err = a.encodeData(st); err != nil {
			return a.fail("data", err)
		}
	}
	a.res.Event, a.res.Data = ev, nil
	return a.res, true
}

// applying is one rule's Result while apply builds it. A data mapping is
// evaluated into vals, one value per key, and pre-checked and encoded from
// there: the object is built only for the Result.
type applying struct {
	s   *Set
	r   *rule
	res Result
	// vals holds the mapping's values while evaluated; res.Data is then
	// not built.
	vals      []any
	evaluated bool
	// encoded says the data, an expression's value, was encoded into
	// st.buf as it was checked (encodedErr the encoder's failure):
	// encodeData copies it.
	encoded    bool
	encodedErr error
}

// build makes res.Data from vals, when the mapping was evaluated into them.
func (a *applying) build() {
	if a.evaluated {
		a.res.Data, a.evaluated = a.r.data.object(a.vals), false
	}
}

// fail ends the rule with the failure of its expression field: a
// *DeadLetterError when the expression called deadLetter, a *RuleError
// otherwise.
func (a *applying) fail(field string, err error) (Result, bool) {
	var dl *DeadLetterError
	if errors.As(err, &dl) {
		a.res.Err = &DeadLetterError{Connector: a.s.connector, Rule: a.r.name, Field: field, Reason: dl.Reason}
	} else {
		a.res.Err = a.s.ruleError(a.r, field, err)
	}
	a.build()
	a.detach()
	return a.res, true
}

// detach makes res.Data a copy that shares no map or list with the
// change: data read whole from the change (after, a nested object) is
// encoded from the change's own maps, and only a Result that carries the
// data out copies it.
func (a *applying) detach() {
	if a.res.Data == nil {
		return
	}
	if v, err := catalog.Normalize(a.res.Data); err == nil {
		a.res.Data = v
	}
}

// evalData evaluates the rule's data: a mapping into vals, any other shape
// into res.Data. On failure it returns the field that failed.
func (a *applying) evalData(st *state) (string, error) {
	var err error
	if n := a.r.data; n.kind == dataExpr && !a.r.validate {
		// Nothing reads the value but the encoder: it is checked as it
		// is encoded, and normalized (and encoded again) only when it
		// is not already JSON-compatible. The result is what n.eval and
		// n.encode give.
		v, err := n.prog.run(st)
		if err != nil {
			return n.field, err
		}
		b, ok, err := st.keys.appendJSON(st.buf[:0], v)
		if err != nil {
			ok = jsonValue(v, 0)
		}
		if ok {
			st.buf = b
			a.res.Data, a.encoded, a.encodedErr = v, true, err
			return "", nil
		}
		if a.res.Data, err = catalog.Normalize(v); err != nil {
			return n.field, err
		}
		return "", nil
	}
	if a.r.data.kind == dataObject {
		a.vals, err = a.r.data.evalFields(st)
		a.evaluated = err == nil
	} else {
		a.res.Data, err = a.r.data.eval(st)
	}
	if err != nil {
		var de *dataError
		if errors.As(err, &de) {
			return de.field, de.err
		}
		return "data", err
	}
	return "", nil
}

// encodeData encodes the rule's data, from vals when the mapping was
// evaluated into them, into a copy the event keeps.
func (a *applying) encodeData(st *state) (json.RawMessage, error) {
	if a.encoded {
		if a.encodedErr != nil {
			return nil, a.encodedErr
		}
		return append(json.RawMessage(make([]byte, 0, len(st.buf))), st.buf...), nil
	}
	var b []byte
	var err error
	if a.evaluated {
		b, err = a.r.data.encodeFields(st.buf[:0], a.vals)
	} else {
		b, err = a.r.data.encode(st.buf[:0], a.res.Data)
	}
	st.buf = b
	if err != nil {
		return nil, err
	}
	return append(json.RawMessage(make([]byte, 0, len(b))), b...), nil
}

// holds runs a when expression. It fails when the expression does not give
// a boolean.
func (p *program) holds(st *state) (bool, error) {
	v, err := p.run(st)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("when gave %s, not a boolean; compare it, such as after.flag == \"Y\", or convert it with bool(...)", describe(v))
	}
	return b, nil
}

// attributes sets ev's subject, partition key, source and time from r's
// expressions. On failure it returns the field that failed.
func (s *Set) attributes(st *state, r *rule, ch *core.Change, ev *core.Event) (string, error) {
	var err error
	if ev.Subject, err = s.text(st, r.subject); err != nil {
		return "subject", err
	}
	if r.keyIsSubject {
		ev.PartitionKey = ev.Subject
	} else if ev.PartitionKey, err = s.text(st, r.partitionKey); err != nil {
		return "partition_key", err
	}
	if r.source != nil {
		src, err := s.text(st, r.source)
		if err != nil {
			return "source", err
		}
		if src == "" {
			return "source", errors.New("source is empty; it must be a URI reference such as /erp/orders")
		}
		ev.Source = src
	}
	if ev.Time, err = s.eventTime(st, r.time, ch); err != nil {
		return "time", err
	}
	return "", nil
}

func (s *Set) ruleError(r *rule, field string, err error) *RuleError {
	re := &RuleError{Connector: s.connector, Rule: r.name, Field: field, Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		re.Column = fe.Column + 1
		msg := fe.Message
		if strings.HasPrefix(msg, "cannot fetch ") && strings.HasSuffix(msg, " from <nil>") {
			msg += "; read optional fields with ?., such as after?.customer?.name, to get nil instead"
		}
		re.Err = &exprError{msg: msg, prev: fe.Prev}
	}
	return re
}

// exprError is an expression's run-time failure, without expr's snippet.
type exprError struct {
	msg  string
	prev error
}

func (e *exprError) Error() string { return e.msg }
func (e *exprError) Unwrap() error { return e.prev }

// text runs a subject, partition key or source expression and renders its
// value as text. nil renders as "", so the attribute is omitted.
func (s *Set) text(st *state, p *program) (string, error) {
	if p == nil {
		return "", nil
	}
	if p.fast != nil {
		if s, ok := p.fast.text(&st.env); ok {
			return s, nil
		}
	}
	v, err := p.run(st)
	if err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		return "", errors.New("value is an object; it must be a string, a number or a boolean")
	case []any:
		return "", errors.New("value is a list; it must be a string, a number or a boolean")
	}
	return toString(v)
}

// eventTime runs the time expression, falling back to the change's commit
// time, then to now.
func (s *Set) eventTime(st *state, p *program, ch *core.Change) (time.Time, error) {
	if p != nil {
		v, err := p.run(st)
		if err != nil {
			return time.Time{}, err
		}
		switch x := v.(type) {
		case time.Time:
			if !x.IsZero() {
				return x.UTC(), nil
			}
		case string:
			if x != "" {
				t, err := time.Parse(time.RFC3339Nano, x)
				if err != nil {
					return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time; parse other layouts with date(value, layout)", x)
				}
				return t.UTC(), nil
			}
		case nil:
		default:
			return time.Time{}, fmt.Errorf("value is a %T; it must be a time or an RFC 3339 string (convert epoch numbers with fromUnix or fromUnixMilli)", v)
		}
	}
	if !ch.Source.CommitTime.IsZero() {
		return ch.Source.CommitTime.UTC(), nil
	}
	return time.Now().UTC(), nil
}

// dataError locates a failure inside the data shape.
type dataError struct {
	field string
	err   error
}

func (e *dataError) Error() string { return e.field + ": " + e.err.Error() }
func (e *dataError) Unwrap() error { return e.err }

// eval builds the data value of n, JSON-compatible.
func (n *dataNode) eval(st *state) (any, error) {
	switch n.kind {
	case dataConst:
		return n.konst, nil
	case dataExpr:
		v, err := n.prog.run(st)
		if err != nil {
			return nil, &dataError{field: n.field, err: err}
		}
		if jsonValue(v, 0) {
			// Already what Normalize makes (a row read whole, such as
			// after): encoded as it is, not copied; detach copies it
			// should it leave in a Result.
			return v, nil
		}
		v, err = catalog.Normalize(v)
		if err != nil {
			return nil, &dataError{field: n.field, err: err}
		}
		return v, nil
	case dataObject:
		m := make(map[string]any, len(n.keys))
		for i, k := range n.keys {
			v, err := n.children[i].eval(st)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case dataArray:
		l := make([]any, len(n.children))
		for i, c := range n.children {
			v, err := c.eval(st)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return nil, fmt.Errorf("unknown data node kind %d", n.kind)
}

// evalFields evaluates the children of n, a mapping, into st.vals: one
// value per key, in key order.
func (n *dataNode) evalFields(st *state) ([]any, error) {
	if cap(st.vals) < len(n.children) {
		st.vals = make([]any, len(n.children))
	}
	vals := st.vals[:len(n.children)]
	for i, c := range n.children {
		v, err := c.eval(st)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// object builds the data value of n, a mapping, from the values of its
// keys: what n.eval returns.
func (n *dataNode) object(vals []any) map[string]any {
	m := make(map[string]any, len(n.keys))
	for i, k := range n.keys {
		m[k] = vals[i]
	}
	return m
}

// encodeFields appends the JSON of n, a mapping, from the values of its
// keys, in the order sorted at compile time.
func (n *dataNode) encodeFields(b []byte, vals []any) ([]byte, error) {
	b = append(b, '{')
	for i, c := range n.children {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, n.keyJSON[i]...)
		var err error
		if b, err = c.encode(b, vals[i]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// encode appends the JSON of v, built by n.eval, using the keys sorted at
// compile time.
func (n *dataNode) encode(b []byte, v any) ([]byte, error) {
	switch n.kind {
	case dataObject:
		m, ok := v.(map[string]any)
		if !ok {
			return appendJSON(b, v)
		}
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, n.keyJSON[i]...)
			var err error
			if b, err = n.children[i].encode(b, m[k]); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case dataArray:
		l, ok := v.([]any)
		if !ok || len(l) != len(n.children) {
			return appendJSON(b, v)
		}
		b = append(b, '[')
		for i, c := range n.children {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = c.encode(b, l[i]); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	return appendJSON(b, v)
}

// describe names a value's kind for a message.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	}
	return fmt.Sprintf("a %T", v)
}
