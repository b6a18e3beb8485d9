package catalog_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

func validTypes() []core.EventType {
	return []core.EventType{
		{
			Type:       "com.acme.order.accepted",
			Version:    "1",
			SchemaFile: "schemas/order_accepted.json",
		},
		{
			Type:    "com.acme.order.shipped",
			Version: "2.1.0",
			// As a YAML decoder leaves it: map[string]any with int values.
			Schema: map[string]any{
				"type":     "object",
				"required": []any{"order_id"},
				"properties": map[string]any{
					"order_id": map[string]any{"type": "string"},
					"parcels":  map[string]any{"type": "integer", "minimum": 1},
					"id":       map[string]any{"type": "string", "format": "uuid"},
				},
			},
		},
		{
			Type:       "com.acme.customer.registered",
			Version:    "1",
			SchemaFile: "schemas/customer.yaml",
		},
	}
}

func newCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(validTypes(), "testdata")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestNewValid(t *testing.T) {
	c := newCatalog(t)
	var got []string
	for _, et := range c.Types() {
		got = append(got, et.Type)
	}
	want := []string{"com.acme.order.accepted", "com.acme.order.shipped", "com.acme.customer.registered"}
	if !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
	if !c.Has("com.acme.order.shipped") || c.Has("com.acme.order.lost") {
		t.Error("Has gives wrong answers")
	}
	if c.Len() != 3 {
		t.Errorf("Len() = %d, want 3", c.Len())
	}
	if got := c.DataSchema("com.acme.order.shipped"); got != "urn:tributary:schema:com.acme.order.shipped:2.1.0" {
		t.Errorf("DataSchema = %q", got)
	}
	if got := c.DataSchema("com.acme.order.lost"); got != "" {
		t.Errorf("DataSchema of an unknown type = %q, want empty", got)
	}
}

func TestNilCatalog(t *testing.T) {
	var c *catalog.Catalog
	if c.Has("a.b") || c.Len() != 0 || c.Types() != nil || c.DataSchema("a.b") != "" {
		t.Error("a nil catalog must be empty")
	}
	if err := c.Validate("a.b", nil); !errors.Is(err, catalog.ErrUnknownType) {
		t.Errorf("Validate on a nil catalog = %v, want ErrUnknownType", err)
	}
	empty, err := catalog.New(nil, "")
	if err != nil || empty.Len() != 0 || empty.Has("a.b") {
		t.Errorf("New(nil) = %v, %v; want an empty catalog", empty, err)
	}
}

func TestValidate(t *testing.T) {
	c := newCatalog(t)
	tests := []struct {
		name     string
		typ      string
		data     any
		problems []string // substrings, one per expected problem; nil means valid
	}{
		{
			name: "valid with json.Number and a $ref to YAML",
			typ:  "com.acme.order.accepted",
			data: map[string]any{
				"order_id": "A-1", "total": json.Number("12345678901234567890.123"),
				"customer":    map[string]any{"id": json.Number("7"), "email": "ann@example.com"},
				"accepted_at": "2024-05-01T10:00:00Z",
			},
		},
		{
			name: "valid with Go integers",
			typ:  "com.acme.order.shipped",
			data: map[string]any{"order_id": "A-1", "parcels": int64(3)},
		},
		{
			name: "big json.Number integer is an integer",
			typ:  "com.acme.order.shipped",
			data: map[string]any{"order_id": "A-1", "parcels": json.Number("123456789012345678901234567890")},
		},
		{
			name:     "missing required property at the root",
			typ:      "com.acme.order.shipped",
			data:     map[string]any{"parcels": 2},
			problems: []string{"(root): missing property 'order_id'"},
		},
		{
			name:     "several problems, nested",
			typ:      "com.acme.order.accepted",
			data:     map[string]any{"order_id": "", "total": -1.5, "customer": map[string]any{"id": "x"}},
			problems: []string{"/order_id: ", "/total: ", "/customer/id: "},
		},
		{
			name:     "format date-time asserted",
			typ:      "com.acme.order.accepted",
			data:     map[string]any{"order_id": "A", "total": 1, "customer": map[string]any{"id": 1}, "accepted_at": "yesterday"},
			problems: []string{"/accepted_at: "},
		},
		{
			name:     "format email asserted",
			typ:      "com.acme.customer.registered",
			data:     map[string]any{"id": 1, "email": "not-an-email"},
			problems: []string{"/email: "},
		},
		{
			name:     "format uuid asserted",
			typ:      "com.acme.order.shipped",
			data:     map[string]any{"order_id": "A", "id": "123"},
			problems: []string{"/id: "},
		},
		{
			name:     "integer rejects a fraction",
			typ:      "com.acme.order.shipped",
			data:     map[string]any{"order_id": "A", "parcels": json.Number("1.5")},
			problems: []string{"/parcels: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Validate(tt.typ, tt.data)
			if tt.problems == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ve *catalog.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if ve.Type != tt.typ {
				t.Errorf("Type = %q, want %q", ve.Type, tt.typ)
			}
			if len(ve.Problems) != len(tt.problems) {
				t.Fatalf("Problems = %q, want %d matching %q", ve.Problems, len(tt.problems), tt.problems)
			}
			for _, want := range tt.problems {
				if !slices.ContainsFunc(ve.Problems, func(p string) bool { return strings.Contains(p, want) }) {
					t.Errorf("Problems = %q, none contains %q", ve.Problems, want)
				}
			}
			if !strings.Contains(err.Error(), tt.typ) {
				t.Errorf("Error() = %q does not name the type", err)
			}
		})
	}
}

func TestValidateUnknownType(t *testing.T) {
	err := newCatalog(t).Validate("com.acme.order.lost", map[string]any{})
	if !errors.Is(err, catalog.ErrUnknownType) || !strings.Contains(err.Error(), "com.acme.order.lost") {
		t.Errorf("Validate = %v, want ErrUnknownType naming the type", err)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(ts []core.EventType) []core.EventType
		path   string
		msg    string
	}{
		{"empty type", func(ts []core.EventType) []core.EventType { ts[1].Type = ""; return ts }, "[1].type", "empty"},
		{"uppercase type", func(ts []core.EventType) []core.EventType { ts[1].Type = "Com.Acme.Order"; return ts }, "[1].type", "reverse-DNS"},
		{"one-segment type", func(ts []core.EventType) []core.EventType { ts[1].Type = "order"; return ts }, "[1].type", "reverse-DNS"},
		{"duplicate type", func(ts []core.EventType) []core.EventType { ts[2].Type = ts[0].Type; return ts }, "[2].type", "twice"},
		{"missing version", func(ts []core.EventType) []core.EventType { ts[0].Version = ""; return ts }, "[0].version", "required"},
		{"version with colon", func(ts []core.EventType) []core.EventType { ts[0].Version = "1:2"; return ts }, "[0].version", "letters"},
		{"no schema", func(ts []core.EventType) []core.EventType { ts[1].Schema = nil; return ts }, "[1].schema", "missing"},
		{"both schemas", func(ts []core.EventType) []core.EventType { ts[1].SchemaFile = "x.json"; return ts }, "[1].schema_file", "not both"},
		{"missing file", func(ts []core.EventType) []core.EventType { ts[2].SchemaFile = "schemas/nope.json"; return ts }, "[2].schema_file", "no such file"},
		{"unparsable file", func(ts []core.EventType) []core.EventType { ts[2].SchemaFile = "schemas/broken.json"; return ts }, "[2].schema_file", "JSON"},
		{"file schema does not compile", func(ts []core.EventType) []core.EventType {
			ts[2].SchemaFile = "schemas/invalid_keyword.yaml"
			return ts
		}, "[2].schema_file", "/type: value must be one of"},
		{"inline schema does not compile", func(ts []core.EventType) []core.EventType {
			ts[1].Schema = map[string]any{"type": "object", "minProperties": "two"}
			return ts
		}, "[1].schema", "minProperties"},
		{"inline schema with a bad regex", func(ts []core.EventType) []core.EventType {
			ts[1].Schema = map[string]any{"type": "string", "pattern": "("}
			return ts
		}, "[1].schema", "does not compile"},
		{"inline schema not JSON", func(ts []core.EventType) []core.EventType {
			ts[1].Schema = map[string]any{"type": func() {}}
			return ts
		}, "[1].schema", "not JSON"},
		{"inline schema with unresolved $ref", func(ts []core.EventType) []core.EventType {
			ts[1].Schema = map[string]any{"$ref": "#/$defs/missing"}
			return ts
		}, "[1].schema", "does not compile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.New(tt.break_(validTypes()), "testdata")
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			errs := core.Flatten(err)
			if len(errs) != 1 {
				t.Fatalf("New = %d errors (%v), want 1", len(errs), err)
			}
			var fe *core.FieldError
			if !errors.As(errs[0], &fe) {
				t.Fatalf("error %v is not a *core.FieldError", errs[0])
			}
			if fe.Path != tt.path {
				t.Errorf("Path = %q, want %q (%v)", fe.Path, tt.path, err)
			}
			if !strings.Contains(fe.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", fe.Error(), tt.msg)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	ts := validTypes()
	ts[0].Version = ""
	ts[1].Type = "Bad"
	ts[2].SchemaFile = "schemas/nope.yaml"
	_, err := catalog.New(ts, "testdata")
	var paths []string
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if errors.As(e, &fe) {
			paths = append(paths, fe.Path)
		}
	}
	want := []string{"[0].version", "[1].type", "[2].schema_file"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths = %v, want %v", paths, want)
	}
}

func TestNormalize(t *testing.T) {
	ts := time.Date(2024, 5, 1, 10, 0, 0, 500, time.UTC)
	type code string
	got, err := catalog.Normalize(map[string]any{
		"t":   ts,
		"b":   []byte("hi"),
		"n":   json.Number("1.10"),
		"i":   int64(1) << 60,
		"y":   map[any]any{1: "one"},
		"s":   []string{"a"},
		"c":   code("x"),
		"raw": json.RawMessage(`{"a":1.50}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":"aGk=","c":"x","i":1152921504606846976,"n":1.10,"raw":{"a":1.50},"s":["a"],"t":"2024-05-01T10:00:00.0000005Z","y":{"1":"one"}}`
	if string(b) != want {
		t.Errorf("Normalize gives\n%s\nwant\n%s", b, want)
	}
	for _, bad := range []any{map[string]any{"a": []any{make(chan int)}}, float32(0) / float32(zero())} {
		if _, err := catalog.Normalize(bad); err == nil {
			t.Errorf("Normalize(%v) succeeded, want an error", bad)
		}
	}
}

func zero() float64 { return 0 }

// TestNormalizeAbsentIsNull checks that a nil map or list (an absent
// record) normalizes to nil, JSON null, and an empty one stays empty.
func TestNormalizeAbsentIsNull(t *testing.T) {
	got, err := catalog.Normalize(map[string]any{
		"before": map[string]any(nil),
		"yaml":   map[any]any(nil),
		"list":   []any(nil),
		"empty":  map[string]any{},
		"none":   []any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"before":null,"empty":{},"list":null,"none":[],"yaml":null}`; string(b) != want {
		t.Errorf("Normalize gives %s, want %s", b, want)
	}
}
