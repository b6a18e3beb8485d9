package rules_test

import (
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

func TestPayloadPaths(t *testing.T) {
	p := func(lenOnly bool, fields ...string) core.PayloadPath {
		return core.PayloadPath{Fields: fields, LenOnly: lenOnly}
	}
	tests := []struct {
		name    string
		when    string
		data    map[string]any
		want    []core.PayloadPath
		wantAll bool
	}{
		{name: "no payload", when: `op == "message"`, data: map[string]any{"a": "meta.path"}},
		{
			name: "the webhook bench rule", when: `payload.event == "order.placed"`,
			data: map[string]any{"id": "payload.order.id", "total": "payload.order.total", "lines": "len(payload.order.lines)"},
			want: []core.PayloadPath{p(false, "event"), p(false, "order", "id"), p(true, "order", "lines"), p(false, "order", "total")},
		},
		{
			name: "a whole read covers the paths below it", when: `payload.order != nil`,
			data: map[string]any{"id": "payload.order.id", "n": "len(payload.order.lines)"},
			want: []core.PayloadPath{p(false, "order")},
		},
		{
			name: "a whole read covers a length read of the same path", when: `len(payload.lines) > 0`,
			data: map[string]any{"l": "payload.lines"},
			want: []core.PayloadPath{p(false, "lines")},
		},
		{
			name: "an index reads the whole of its plain prefix", when: `payload.lines[0].sku == "x"`,
			data: map[string]any{"c": `payload.order?.customer`, "k": `payload["key"]`},
			want: []core.PayloadPath{p(false, "key"), p(false, "lines"), p(false, "order")},
		},
		{name: "payload whole", when: `payload != nil`, wantAll: true},
		{name: "payload as an argument", when: `true`, data: map[string]any{"j": "json(payload)"}, wantAll: true},
		{name: "length of payload", when: `len(payload) > 1`, wantAll: true},
		{name: "the environment", when: `$env.payload.a == "x"`, wantAll: true},
		{name: "payload bound to a variable", when: `let p = payload; p.a == "x"`, wantAll: true},
		{name: "a computed field", when: `payload[meta.path] == "x"`, wantAll: true},
		{name: "inside a predicate", when: `all(payload.lines, #.qty > 0)`, want: []core.PayloadPath{p(false, "lines")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := core.Rule{Name: "r", Type: "com.example.thing.happened", When: tt.when}
			if tt.data != nil {
				r.Data = tt.data
			}
			set, err := rules.Compile("c", []core.Rule{r}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, all := set.PayloadPaths()
			if all != tt.wantAll {
				t.Fatalf("all = %v, want %v (paths %v)", all, tt.wantAll, got)
			}
			if !tt.wantAll && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("paths = %v, want %v", got, tt.want)
			}
		})
	}
}
