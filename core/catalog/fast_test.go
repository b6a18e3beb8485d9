package catalog

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tributary/tributary/core"
)

// TestFastAgreesWithFull checks the pre-check never calls valid what the
// full validator rejects, on values near every edge it handles.
func TestFastAgreesWithFull(t *testing.T) {
	schemas := []map[string]any{
		{"type": "integer", "minimum": 0, "maximum": 10},
		{"type": "number", "exclusiveMinimum": json.Number("0.1"), "exclusiveMaximum": 100},
		{"type": []any{"string", "null"}, "minLength": 2, "maxLength": 3, "pattern": "^[a-zé]+$"},
		{"type": "string", "format": "date-time"},
		{"type": "string", "format": "date"},
		{"type": "string", "format": "uuid"},
		{"type": "string", "format": "email"},
		{"enum": []any{"A", "B"}},
		{"type": "array", "items": map[string]any{"type": "integer"}, "minItems": 1, "maxItems": 2},
		{"type": "object", "required": []any{"a"}, "additionalProperties": false,
			"properties": map[string]any{"a": true, "b": false, "c": map[string]any{"type": "boolean"}}},
	}
	values := []any{
		nil, true, false, "", "a", "ab", "abc", "abcd", "é", "éé", "AB", "A", "B",
		0, -1, 10, 11, int64(5), uint8(3), 1 << 60, 0.1, 0.5, 1.0, 1.5, 100.0, 99.999, -0.0,
		json.Number("0"), json.Number("10"), json.Number("10.0"), json.Number("1.0"), json.Number("0.1"),
		json.Number("0.10000000000000001"), json.Number("12345678901234567890"), json.Number("1e2"), json.Number("5E-1"),
		"2024-05-01T10:00:00Z", "2024-05-01t10:00:00.123z", "2024-05-01T10:00:00+02:00", "2024-05-01T23:59:60Z",
		"2024-02-30T10:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:00+24:00",
		"2024-05-01", "2024-13-01", "6f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a91", "6f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a9",
		"6F1C8A2E-8D0B-5A57-9F3E-7B1E0C4D2A9G", "ann@example.com", "ann@", "@x",
		[]any{}, []any{1}, []any{1, 2}, []any{1, 2, 3}, []any{"x"}, []any{1.5},
		map[string]any{}, map[string]any{"a": 1}, map[string]any{"a": 1, "b": 1}, map[string]any{"a": 1, "c": true},
		map[string]any{"a": 1, "c": "no"}, map[string]any{"a": 1, "d": 1},
	}
	for i, s := range schemas {
		c, err := New([]core.EventType{{Type: fmt.Sprintf("com.acme.t%d", i), Version: "1", Schema: s}}, "")
		if err != nil {
			t.Fatalf("schema %d: %v", i, err)
		}
		e := c.entries[fmt.Sprintf("com.acme.t%d", i)]
		if e.fast == nil {
			t.Fatalf("schema %d %v has no pre-check", i, s)
		}
		for _, v := range values {
			fast := e.fast.valid(v)
			full := e.schema.Validate(v) == nil
			if fast && !full {
				t.Errorf("schema %v: pre-check accepts %#v, the validator rejects it", s, v)
			}
		}
	}
}

func TestFastDeclines(t *testing.T) {
	for _, s := range []map[string]any{
		{"$ref": "#/$defs/x", "$defs": map[string]any{"x": true}},
		{"oneOf": []any{true}},
		{"additionalProperties": map[string]any{"type": "string"}},
		{"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"},
		{"enum": []any{1, "a"}},
	} {
		if f := newFast(s, true, func(string) *jsonschema.Schema { return nil }); f != nil {
			t.Errorf("schema %v gets a pre-check, want none", s)
		}
	}
}

// TestQuickDateIsTimeParse checks the hand-written date test against
// time.Parse on every month and day around the edges, leap years included.
func TestQuickDateIsTimeParse(t *testing.T) {
	var inputs []string
	for _, y := range []string{"0000", "0004", "1900", "1999", "2000", "2023", "2024", "2100", "9999"} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				inputs = append(inputs, fmt.Sprintf("%s-%02d-%02d", y, m, d))
			}
		}
	}
	inputs = append(inputs, "", "2024-5-01", "2024-05-1", "24-05-01", "2024/05/01", "2024-05-01 ",
		"20240-05-01", "2024-05-0a", "a024-05-01", "2024-0a-01", "2024-05-01T", "+024-05-01", "-024-05-01")
	for _, s := range inputs {
		_, err := time.Parse("2006-01-02", s)
		if got, want := quickDate(s), err == nil; got != want {
			t.Errorf("quickDate(%q) = %v, time.Parse says %v", s, got, want)
		}
	}
}

// TestFieldsAgreesWithFast checks the per-key pre-check gives the answer of
// the object pre-check on the object built from the same keys and values.
func TestFieldsAgreesWithFast(t *testing.T) {
	schema := map[string]any{
		"type": "object", "required": []any{"a"}, "additionalProperties": false,
		"properties": map[string]any{
			"a": map[string]any{"type": "integer", "minimum": 0},
			"b": map[string]any{"type": "string", "format": "date-time"},
			"c": true,
		},
	}
	c, err := New([]core.EventType{{Type: "com.acme.t", Version: "1", Schema: schema}}, "")
	if err != nil {
		t.Fatal(err)
	}
	open, err := New([]core.EventType{{Type: "com.acme.t", Version: "1", Schema: map[string]any{"type": "object"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cat    *Catalog
		keys   []string
		values []any
	}{
		{"valid", c, []string{"a", "b", "c"}, []any{1, "2024-05-01T10:00:00Z", nil}},
		{"valid subset", c, []string{"a"}, []any{0}},
		{"bad value", c, []string{"a", "b"}, []any{-1, "2024-05-01T10:00:00Z"}},
		{"bad format", c, []string{"a", "b"}, []any{1, "2024-02-30T10:00:00Z"}},
		{"required key missing", c, []string{"b"}, []any{"2024-05-01T10:00:00Z"}},
		{"forbidden key", c, []string{"a", "d"}, []any{1, 1}},
		{"open schema", open, []string{"x", "y"}, []any{1, "z"}},
		{"too few values", c, []string{"a", "b"}, []any{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := map[string]any{}
			for i, k := range tt.keys {
				if i < len(tt.values) {
					m[k] = tt.values[i]
				}
			}
			f := tt.cat.Fields("com.acme.t", tt.keys)
			got := f.Valid(tt.values)
			want := tt.cat.entries["com.acme.t"].fast.valid(m) && len(tt.values) == len(tt.keys)
			if got != want {
				t.Errorf("Fields.Valid = %v, the object pre-check says %v", got, want)
			}
			if got && tt.cat.Validate("com.acme.t", m) != nil {
				t.Errorf("Fields.Valid accepts %v, Validate rejects it", m)
			}
		})
	}
	if (*Catalog)(nil).Fields("com.acme.t", nil).Valid(nil) {
		t.Error("a nil catalog's Fields accepts data")
	}
}
