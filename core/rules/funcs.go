package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/tributary/tributary/core/catalog"
)

// functions returns the helper functions expressions may call, on top of
// expr's builtins. Each is documented in the package doc.
func functions() []expr.Option {
	return []expr.Option{
		expr.Function("coalesce", fnCoalesce, new(func(any, ...any) any)),
		expr.Function("string", fnString, new(func(any) string)),
		expr.Function("toString", fnString, new(func(any) string)),
		expr.Function("int", fnInt, new(func(any) int)),
		expr.Function("float", fnFloat, new(func(any) float64)),
		expr.Function("number", fnNumber, new(func(any) any)),
		expr.Function("decimal", fnDecimal, new(func(any) json.Number)),
		expr.Function("bool", fnBool, new(func(any) bool)),
		expr.Function("blank", fnBlank, new(func(any) bool)),
		expr.Function("fromUnix", fnFromUnix, new(func(any) time.Time)),
		expr.Function("fromUnixMilli", fnFromUnixMilli, new(func(any) time.Time)),
		expr.Function("json", fnJSON, new(func(any) string)),
		expr.Function("parseJSON", fnParseJSON, new(func(string) any)),
		expr.Function("deadLetter", fnDeadLetter, new(func(any) bool)),
		expr.Function(numFn, fnNum, new(func(any) any)),
		expr.Function(changedFn, fnChanged, new(func(map[string]any, map[string]any, string) bool)),
	}
}

// Names of the functions the patcher inserts. They start with an underscore
// so that they cannot clash with a documented helper.
const (
	numFn     = "_num"
	changedFn = "_changed"
)

func fnCoalesce(args ...any) (any, error) {
	for _, a := range args {
		if !isBlank(a) {
			return a, nil
		}
	}
	if len(args) == 0 {
		return nil, nil
	}
	return args[len(args)-1], nil
}

func isBlank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	case []byte:
		return len(bytes.TrimSpace(x)) == 0
	}
	return false
}

func fnBlank(args ...any) (any, error) { return isBlank(args[0]), nil }

// toString renders v as text: numbers in their shortest exact form, times
// in RFC 3339, bytes as UTF-8 text, nil as "", maps and lists as JSON.
func toString(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return string(x), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	case time.Duration:
		return x.String(), nil
	case []byte:
		return string(x), nil
	case fmt.Stringer:
		return x.String(), nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), nil
	case reflect.String:
		return rv.String(), nil
	}
	n, err := catalog.Normalize(v)
	if err != nil || n == nil {
		// An absent record (a nil map) is nil: text "", as nil is.
		return "", err
	}
	b, err := appendJSON(nil, n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func fnString(args ...any) (any, error) { return toString(args[0]) }

// fnDeadLetter backs deadLetter(reason): it never returns a value; the
// *DeadLetterError it raises makes the rule's Result a dead letter, with
// the reason rendered as text.
func fnDeadLetter(args ...any) (any, error) {
	reason, err := toString(args[0])
	if err != nil {
		return nil, fmt.Errorf("deadLetter: the reason %w", err)
	}
	if strings.TrimSpace(reason) == "" {
		reason = "deadLetter called without a reason"
	}
	return nil, &DeadLetterError{Reason: reason}
}

func fnJSON(args ...any) (any, error) {
	n, err := catalog.Normalize(args[0])
	if err != nil {
		return nil, err
	}
	b, err := appendJSON(nil, n)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func fnParseJSON(args ...any) (any, error) {
	s, _ := args[0].(string)
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("parseJSON: %w", err)
	}
	if d.More() {
		return nil, errors.New("parseJSON: trailing data after the JSON value")
	}
	return v, nil
}

// toNumber converts v to an int (when it is integral and fits) or a
// float64. Strings and json.Number are parsed.
func toNumber(v any) (any, error) {
	switch x := v.(type) {
	case int, float64:
		return x, nil
	case json.Number:
		return parseNumber(string(x))
	case string:
		return parseNumber(strings.TrimSpace(x))
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case nil:
		return nil, errors.New("cannot convert nil to a number")
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return float64(u), nil
		}
		return int(u), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return parseNumber(strings.TrimSpace(rv.String()))
	}
	return nil, fmt.Errorf("cannot convert %T to a number", v)
}

func parseNumber(s string) (any, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int(i), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}

func fnNumber(args ...any) (any, error) { return toNumber(args[0]) }

// fnNum is what the patcher wraps around untyped operands of arithmetic and
// comparisons: it turns json.Number into int or float64 and leaves every
// other value alone, so that strings still concatenate.
func fnNum(args ...any) (any, error) {
	if n, ok := args[0].(json.Number); ok {
		return parseNumber(string(n))
	}
	return args[0], nil
}

func fnInt(args ...any) (any, error) {
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("int: %w", err)
	}
	switch x := n.(type) {
	case int:
		return x, nil
	case float64:
		if math.IsNaN(x) || x >= math.MaxInt64 || x < math.MinInt64 {
			return nil, fmt.Errorf("int: %v does not fit an integer", x)
		}
		return int(x), nil
	}
	return nil, fmt.Errorf("int: cannot convert %T", n)
}

func fnFloat(args ...any) (any, error) {
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("float: %w", err)
	}
	switch x := n.(type) {
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return nil, fmt.Errorf("float: cannot convert %T", n)
}

// fnDecimal returns v as an exact JSON number, keeping its digits as
// written: "12.50" stays 12.50.
func fnDecimal(args ...any) (any, error) {
	switch x := args[0].(type) {
	case json.Number:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if !validNumber(s) {
			return nil, fmt.Errorf("decimal: %q is not a number", x)
		}
		return json.Number(s), nil
	case int:
		return json.Number(strconv.Itoa(x)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("decimal: %v is not a number JSON can hold", x)
		}
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64)), nil
	case nil:
		return nil, errors.New("decimal: cannot convert nil to a number")
	}
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("decimal: %w", err)
	}
	return fnDecimal(n)
}

func fnBool(args ...any) (any, error) {
	switch x := args[0].(type) {
	case bool:
		return x, nil
	case nil:
		return false, nil
	case string, json.Number, []byte:
		s, _ := toString(x)
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "t", "yes", "y", "1", "on":
			return true, nil
		case "false", "f", "no", "n", "0", "off", "":
			return false, nil
		}
		return nil, fmt.Errorf("bool: %q is not a boolean", s)
	}
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("bool: %w", err)
	}
	switch x := n.(type) {
	case int:
		return x != 0, nil
	case float64:
		return x != 0, nil
	}
	return nil, fmt.Errorf("bool: cannot convert %T", args[0])
}

func fnFromUnix(args ...any) (any, error) {
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("fromUnix: %w", err)
	}
	switch x := n.(type) {
	case int:
		return time.Unix(int64(x), 0).UTC(), nil
	case float64:
		sec, frac := math.Modf(x)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return nil, fmt.Errorf("fromUnix: cannot convert %T", args[0])
}

func fnFromUnixMilli(args ...any) (any, error) {
	n, err := toNumber(args[0])
	if err != nil {
		return nil, fmt.Errorf("fromUnixMilli: %w", err)
	}
	switch x := n.(type) {
	case int:
		return time.UnixMilli(int64(x)).UTC(), nil
	case float64:
		return time.UnixMicro(int64(x * 1000)).UTC(), nil
	}
	return nil, fmt.Errorf("fromUnixMilli: cannot convert %T", args[0])
}

// fnChanged backs changed(field): whether before and after differ in field.
func fnChanged(args ...any) (any, error) {
	before, _ := args[0].(map[string]any)
	after, _ := args[1].(map[string]any)
	field, _ := args[2].(string)
	b, inB := before[field]
	a, inA := after[field]
	if inA != inB {
		return true, nil
	}
	return !equalValues(a, b), nil
}

func equalValues(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case json.Number:
		if y, ok := b.(json.Number); ok && x == y {
			return true
		}
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	}
	na, errA := toNumber(a)
	nb, errB := toNumber(b)
	if errA == nil && errB == nil && isNumeric(a) && isNumeric(b) {
		return toFloat(na) == toFloat(nb)
	}
	return reflect.DeepEqual(a, b)
}

func isNumeric(v any) bool {
	switch v.(type) {
	case json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return true
	}
	return false
}

func toFloat(n any) float64 {
	switch x := n.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i == len(s) {
		return false
	}
	switch {
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i == len(s) || s[i] < '0' || s[i] > '9' {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// numberPatcher makes json.Number values behave as numbers in expressions.
// Values in a change are untyped (any) at compile time, and exact numbers
// arrive as json.Number, which expr would treat as a string. The patcher
// wraps every untyped operand of an arithmetic or comparison operator, and
// of the numeric builtins, in _num(), which converts json.Number to int or
// float64 at run time and leaves other values alone. Values that are only
// copied into data are never touched, so they stay exact.
//
// It also rewrites changed(field) to _changed(before, after, field).
type numberPatcher struct {
	// idents records the variables an expression reads.
	idents map[string]bool
}

var numericOperators = map[string]bool{
	"+": true, "-": true, "*": true, "/": true, "%": true, "**": true, "^": true,
	"<": true, ">": true, "<=": true, ">=": true, "==": true, "!=": true, "in": true,
}

var numericBuiltins = map[string]bool{
	"abs": true, "ceil": true, "floor": true, "round": true, "max": true, "min": true,
}

var anyType = reflect.TypeOf((*any)(nil)).Elem()

func untyped(n ast.Node) bool {
	t := n.Type()
	return t == nil || t == anyType || t.Kind() == reflect.Interface || t == reflect.TypeOf(json.Number(""))
}

func wrapNum(n *ast.Node) {
	if !untyped(*n) {
		return
	}
	call := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: numFn},
		Arguments: []ast.Node{*n},
	}
	call.Callee.SetLocation((*n).Location())
	ast.Patch(n, call)
}

// Visit implements ast.Visitor.
func (p *numberPatcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if p.idents != nil {
			p.idents[n.Value] = true
		}
	case *ast.BinaryNode:
		if numericOperators[n.Operator] {
			wrapNum(&n.Left)
			if n.Operator != "in" {
				wrapNum(&n.Right)
			}
		}
	case *ast.UnaryNode:
		if n.Operator == "-" || n.Operator == "+" {
			wrapNum(&n.Node)
		}
	case *ast.BuiltinNode:
		if numericBuiltins[n.Name] {
			for i := range n.Arguments {
				wrapNum(&n.Arguments[i])
			}
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && id.Value == "changed" && len(n.Arguments) == 1 {
			before := &ast.IdentifierNode{Value: "before"}
			after := &ast.IdentifierNode{Value: "after"}
			before.SetLocation(n.Location())
			after.SetLocation(n.Location())
			id.Value = changedFn
			n.Arguments = []ast.Node{before, after, n.Arguments[0]}
			if p.idents != nil {
				p.idents["before"], p.idents["after"] = true, true
			}
		}
	}
}

var _ ast.Visitor = (*numberPatcher)(nil)
