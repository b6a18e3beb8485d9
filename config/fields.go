package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"
)

// object validates the mapping m against fields and returns its decoded
// values, with defaults applied. key is the mapping's own key, if any; m may
// be nil or null when the mapping is absent, and then problems about missing
// fields point at owner. fill also fills absent nested objects with their
// defaults (the file's own sections); component configurations leave absent
// objects absent, so that a missing "tls" stays distinguishable from an empty
// one.
func (l *loader) object(key, m, owner *yaml.Node, path string, fields []core.Field, fill bool, depth int) map[string]any {
	out := map[string]any{}
	if !l.visit(m, depth) {
		return out
	}
	n := deref(m)
	present := n != nil && !isNull(n)
	if present && n.Kind != yaml.MappingNode {
		if !l.failed[n] {
			l.problem(key, m, path, "expected a mapping with keys such as %s, got %s", fieldNames(fields, 3), kindName(n))
		}
		return out
	}
	byName := make(map[string]core.Field, len(fields))
	for _, f := range fields {
		byName[f.Name] = f
	}
	if present {
		for _, p := range l.pairs(n) {
			if p.key.Kind != yaml.ScalarNode {
				continue // reported by prepare
			}
			if _, ok := byName[p.key.Value]; !ok {
				names := slices.Sorted(maps.Keys(byName))
				l.problem(nil, p.key, joinPath(path, p.key.Value), "unknown key %q%s; known keys: %s", p.key.Value, didYouMean(p.key.Value, names), strings.Join(names, ", "))
			}
		}
	}
	if owner == nil {
		owner = m
	}
	for _, f := range fields {
		fp := joinPath(path, f.Name)
		var p pair
		found := false
		if present {
			p, found = l.lookup(n, f.Name)
		}
		if found && !isNull(p.value) {
			if f.Deprecated != "" {
				l.warn(p.key, nil, fp, "%q is deprecated: %s", f.Name, f.Deprecated)
			}
			if f.Secret {
				l.secrets[fp] = true
			}
			if v, ok := l.value(p.key, p.value, fp, f, fill, depth+1); ok {
				out[f.Name] = v
			}
			continue
		}
		switch {
		case f.Required && found:
			l.problem(nil, p.key, fp, "required field %q has no value", f.Name)
		case f.Required && key != nil:
			l.problem(key, nil, fp, "required field %q is missing", f.Name)
		case f.Required:
			l.problem(nil, owner, fp, "required field %q is missing", f.Name)
		case f.Default != nil:
			out[f.Name] = defaultValue(f)
		case fill && f.Type == core.TypeObject:
			out[f.Name] = l.object(nil, nil, owner, fp, f.Fields, fill, depth+1)
		}
	}
	return out
}

// value validates and decodes the value v of one declared field.
func (l *loader) value(key, v *yaml.Node, path string, f core.Field, fill bool, depth int) (any, bool) {
	if !l.visit(v, depth) {
		return nil, false
	}
	n := deref(v)
	if l.failed[n] {
		return nil, false
	}
	switch f.Type {
	case core.TypeObject:
		return l.object(key, v, nil, path, f.Fields, fill, depth), true
	case core.TypeObjects:
		if n.Kind != yaml.SequenceNode {
			l.problem(key, v, path, "expected a list of mappings with keys such as %s, got %s", fieldNames(f.Fields, 3), kindName(n))
			return nil, false
		}
		out := make([]any, 0, len(n.Content))
		for i, item := range n.Content {
			out = append(out, l.object(nil, item, nil, fmt.Sprintf("%s[%d]", path, i), f.Fields, fill, depth+1))
		}
		return out, true
	case core.TypeStrings:
		if n.Kind != yaml.SequenceNode {
			l.problem(key, v, path, "expected a list of strings, such as [a, b], got %s", l.show(n, f))
			return nil, false
		}
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			s, good := l.scalar(nil, item, fmt.Sprintf("%s[%d]", path, i), "a string", f, false)
			ok = ok && good
			out = append(out, s)
		}
		return out, ok
	case core.TypeMap:
		if n.Kind != yaml.MappingNode {
			l.problem(key, v, path, "expected a mapping of names to strings, got %s", l.show(n, f))
			return nil, false
		}
		out := map[string]any{}
		ok := true
		for _, p := range l.pairs(n) {
			if p.key.Kind != yaml.ScalarNode {
				ok = false
				continue
			}
			s, good := l.scalar(nil, p.value, joinPath(path, p.key.Value), "a string", f, true)
			ok = ok && good
			out[p.key.Value] = s
		}
		return out, ok
	case core.TypeAny:
		return l.toAny(v, path, depth), true
	}

	s, ok := l.scalar(key, v, path, typeWhat[f.Type], f, false)
	if !ok {
		return nil, false
	}
	if l.fromFile[n] {
		l.secrets[path] = true
	}
	switch f.Type {
	case core.TypeString:
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			l.problem(nil, v, path, "%s is not one of %s%s", l.show(n, f), quoteList(f.Enum), didYouMean(s, f.Enum))
			return nil, false
		}
		return s, true
	case core.TypeInt:
		i, err := parseInt(s)
		if err != nil {
			l.problem(nil, v, path, "%s is not an integer (example: %s)", l.show(n, f), exampleOr(f, "10"))
			return nil, false
		}
		return i, true
	case core.TypeFloat:
		x, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), "_", ""), 64)
		if err != nil {
			l.problem(nil, v, path, "%s is not a number (example: %s)", l.show(n, f), exampleOr(f, "0.5"))
			return nil, false
		}
		return x, true
	case core.TypeBool:
		b, ok := parseBool(s)
		if !ok {
			l.problem(nil, v, path, "%s is not a boolean: write true or false", l.show(n, f))
			return nil, false
		}
		return b, true
	case core.TypeDuration:
		if _, err := time.ParseDuration(strings.TrimSpace(s)); err != nil {
			l.problem(nil, v, path, "%s is not a duration (examples: 30s, 5m, 1h30m)", l.show(n, f))
			return nil, false
		}
		return strings.TrimSpace(s), true
	}
	l.problem(key, v, path, "field type %q is not supported", f.Type)
	return nil, false
}

// scalar returns the text of a scalar node, or records a problem naming what
// was expected. nullOK turns a null into "".
func (l *loader) scalar(key, v *yaml.Node, path, what string, f core.Field, nullOK bool) (string, bool) {
	n := deref(v)
	if l.failed[n] {
		return "", false
	}
	if n == nil || n.Kind != yaml.ScalarNode || isNull(n) && !nullOK {
		l.problem(key, v, path, "expected %s, got %s", what, l.show(n, f))
		return "", false
	}
	if l.fromFile[n] {
		l.secrets[path] = true
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// show quotes a node's value for a message, unless it is a secret.
func (l *loader) show(n *yaml.Node, f core.Field) string {
	if n != nil && n.Kind == yaml.ScalarNode && !isNull(n) && (f.Secret || l.fromFile[n]) {
		return "the value"
	}
	return kindName(n)
}

// toAny decodes a free-form value: mappings become map[string]any, lists
// []any, scalars string, int, float64, bool or nil.
func (l *loader) toAny(v *yaml.Node, path string, depth int) any {
	if !l.visit(v, depth) {
		return nil
	}
	n := deref(v)
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for _, p := range l.pairs(n) {
			out[p.key.Value] = l.toAny(p.value, joinPath(path, p.key.Value), depth+1)
		}
		return out
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			out = append(out, l.toAny(c, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return out
	case yaml.ScalarNode:
		if l.fromFile[n] {
			l.secrets[path] = true
		}
		return scalarAny(n)
	}
	return nil
}

// scalarAny decodes a scalar by its resolved YAML tag.
func scalarAny(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int
		if n.Decode(&i) == nil {
			return i
		}
		var x float64
		if n.Decode(&x) == nil {
			return x
		}
	case "!!float":
		var x float64
		if n.Decode(&x) == nil {
			return x
		}
	}
	return n.Value
}

// parseInt accepts decimal integers, with optional underscores, and 0x, 0o
// and 0b prefixes.
func parseInt(s string) (int, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), "_", "")
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		lower := strings.ToLower(strings.TrimLeft(s, "+-"))
		if strings.HasPrefix(lower, "0x") || strings.HasPrefix(lower, "0o") || strings.HasPrefix(lower, "0b") {
			i, err = strconv.ParseInt(s, 0, 64)
		}
	}
	return int(i), err
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// typeWhat names what a scalar field type expects, for messages.
var typeWhat = map[core.FieldType]string{
	core.TypeString:   "a string",
	core.TypeInt:      "an integer",
	core.TypeFloat:    "a number",
	core.TypeBool:     "true or false",
	core.TypeDuration: "a duration such as 30s",
}

func exampleOr(f core.Field, def string) string {
	if f.Example != "" {
		return f.Example
	}
	return def
}

// fieldNames lists up to n field names for messages.
func fieldNames(fields []core.Field, n int) string {
	var names []string
	for _, f := range fields {
		if len(names) == n {
			break
		}
		names = append(names, strconv.Quote(f.Name))
	}
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// defaultValue converts a field's declared default to the form values take
// in core.Config: []any for lists, map[string]any for maps, strings for
// durations. Collections are copied so that configurations never share them.
func defaultValue(f core.Field) any {
	switch d := f.Default.(type) {
	case []string:
		out := make([]any, len(d))
		for i, s := range d {
			out[i] = s
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(d))
		for k, v := range d {
			out[k] = v
		}
		return out
	case time.Duration:
		return d.String()
	case int64:
		return int(d)
	case int32:
		return int(d)
	case float32:
		return float64(d)
	case uint:
		return int(d)
	}
	return copyAny(f.Default)
}

// copyAny deep-copies maps and lists of a decoded value.
func copyAny(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = copyAny(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = copyAny(x)
		}
		return out
	}
	return v
}
