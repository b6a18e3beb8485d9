package all_test

import (
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"

	_ "github.com/tributary/tributary/connectors/all"
	"github.com/tributary/tributary/core"
)

// component is a registered source or stream type as this test sees it.
type component struct {
	kind, typ string
	config    any
	fields    []core.Field
}

func components() []component {
	var out []component
	for _, s := range core.DefaultRegistry.Streams() {
		out = append(out, component{"stream", s.Type, s.Config, s.Fields})
	}
	for _, s := range core.DefaultRegistry.Sources() {
		out = append(out, component{"source", s.Type, s.Config, s.Fields})
	}
	for _, s := range core.DefaultRegistry.Sinks() {
		out = append(out, component{"sink", s.Type, s.Config, s.Fields})
	}
	return out
}

// TestEveryKeyIsDeclaredOnce: every shipped component registers its typed
// configuration, so its field list (validation, `tributary connectors`, the
// config schema) is derived from the struct it decodes into and cannot
// drift from it; and a document of every declared key, with its example or
// default, decodes strictly into that struct.
func TestEveryKeyIsDeclaredOnce(t *testing.T) {
	for _, c := range components() {
		t.Run(c.kind+"/"+c.typ, func(t *testing.T) {
			if c.config == nil {
				t.Fatalf("%s %q registers a hand-written field list; register its typed Config so that each key is declared once", c.kind, c.typ)
			}
			if !reflect.DeepEqual(c.fields, core.FieldsOfType(reflect.TypeOf(c.config))) {
				t.Fatalf("%s %q: registered fields differ from those its Config declares", c.kind, c.typ)
			}
			values := sampleValues(t, c.fields)
			v := reflect.New(reflect.TypeOf(c.config))
			if err := core.NewConfig(c.typ, values).Decode(v.Interface()); err != nil {
				t.Fatalf("a document of every declared key does not decode into %s: %v\n%v", reflect.TypeOf(c.config), err, values)
			}
		})
	}
}

// sampleValues builds a value for every field: its example, else its
// default, else a zero value of its type.
func sampleValues(t *testing.T, fields []core.Field) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, f := range fields {
		var v any
		switch {
		case f.Example != "" && f.Type != core.TypeObject && f.Type != core.TypeObjects:
			if err := yaml.Unmarshal([]byte(f.Example), &v); err != nil || v == nil {
				v = f.Example
			}
			if f.Type == core.TypeString || f.Type == core.TypeDuration {
				v = f.Example
			}
		case f.Default != nil:
			v = f.Default
		default:
			v = zeroOf(t, f)
		}
		out[f.Name] = v
	}
	return out
}

func zeroOf(t *testing.T, f core.Field) any {
	switch f.Type {
	case core.TypeString:
		if len(f.Enum) > 0 {
			return f.Enum[0]
		}
		return "x"
	case core.TypeDuration:
		return "1s"
	case core.TypeInt:
		return 1
	case core.TypeFloat:
		return 1.5
	case core.TypeBool:
		return true
	case core.TypeStrings:
		return []any{"x"}
	case core.TypeMap:
		return map[string]any{"k": "v"}
	case core.TypeObject:
		return sampleValues(t, f.Fields)
	case core.TypeObjects:
		return []any{sampleValues(t, f.Fields)}
	case core.TypeAny:
		return map[string]any{"k": "v"}
	}
	t.Fatalf("field %q: unknown type %s", f.Name, f.Type)
	return nil
}
