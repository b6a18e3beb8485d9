package core_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
)

// TestPrunedPayloadIsWholeWhereNeeded checks that a change whose payload
// a source pruned to the rules' paths is whole in its dead-letter record
// and in FullPayload.
func TestPrunedPayloadIsWholeWhereNeeded(t *testing.T) {
	raw := []byte(`{"order":{"id":"o-1","lines":[{"sku":"a"}]},"note":"<n>","n":1.50}`)
	whole := map[string]any{"order": map[string]any{"id": "o-1", "lines": []any{map[string]any{"sku": "a"}}}, "note": "<n>", "n": json.Number("1.50")}
	tests := []struct {
		name string
		ch   core.Change
	}{
		{name: "pruned", ch: core.Change{Op: core.OpMessage, Payload: map[string]any{"order": map[string]any{"id": "o-1"}}, PayloadPruned: true, Raw: raw}},
		{name: "whole", ch: core.Change{Op: core.OpMessage, Payload: whole, Raw: raw}},
	}
	var records []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ch.FullPayload()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, whole) {
				t.Errorf("FullPayload = %#v, want %#v", got, whole)
			}
			b, err := tt.ch.MarshalRaw()
			if err != nil {
				t.Fatal(err)
			}
			records = append(records, string(b))
		})
	}
	if len(records) == 2 && records[0] != records[1] {
		t.Errorf("dead-letter record of the pruned change:\n%s\nwant that of the whole one:\n%s", records[0], records[1])
	}
	bad := core.Change{Payload: map[string]any{}, PayloadPruned: true, Raw: []byte(`{"x":`)}
	if _, err := bad.FullPayload(); err == nil || !strings.Contains(err.Error(), "pruned payload") {
		t.Errorf("FullPayload of a broken raw body: %v", err)
	}
}
