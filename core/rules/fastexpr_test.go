package rules

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestFastExprAgreesWithVM checks that whenever the VM-free evaluator
// answers, the VM gives the same value without an error.
func TestFastExprAgreesWithVM(t *testing.T) {
	exprs := []string{
		`op == "create"`, `op != "create"`, `"create" == op`, `op == "create" && after.status == "NEW"`,
		`op == "update" || after.status == "NEW"`, `!(op == "create")`, `not (after.status != "NEW")`,
		`"orders/" + after.id`, `after.id + "/" + connector`, `position + connector`, `after.status`,
		`after.flag && op == "create"`, `after.flag || after.status == "x"`, `!after.flag`, `after.id == after.status`,
		`key.id == "7"`, `meta.file + ""`, `before.status == after.status`, `true && false`, `true`, `"x"`,
		`after.missing == "x"`, `after.num == "1"`, `after.num + "x"`, `after.status and after.flag`,
		`after.flag and after.status`, `after.flag or after.status`, `after.count == "3"`, `before.x == "y"`,
		`after["id"] + "!"`, `string(after.id)`, `toString(after.count)`, `"orders/" + string(after.num)`,
		`string(after.flag)`, `string(after.missing)`, `string(after.id) == "5"`, `string(after.at)`,
		`string(after.f) + "/" + string(key.id)`, `string(op)`,
		`payload.event`, `payload.event == "order.placed"`, `payload.order.id`, `payload["order"].id`,
		`payload.order.total`, `payload.order.lines`, `len(payload.order.lines)`, `len(payload.order)`,
		`len(payload.event)`, `payload.order.missing`, `payload.missing.id`, `payload.event.id`,
		`"orders/" + payload.order.id`, `string(payload.order.total)`, `payload.flag && op == "create"`,
		`!payload.flag`, `payload.order.id == after.id`, `len(payload.missing)`,
		`after`, `before`, `key`, `meta`, `string(after)`, `after == before`,
	}
	changes := []*core.Change{
		{Op: core.OpCreate, Position: core.Position{Version: 1, Data: []byte("p")},
			Key: map[string]any{"id": "7"}, Meta: map[string]any{"file": "a.csv"},
			After: map[string]any{"id": "A-1", "status": "NEW", "flag": true, "num": json.Number("1"), "count": 3,
				"at": time.Date(2024, 5, 6, 7, 8, 9, 10, time.UTC), "f": 1.5},
			Payload: map[string]any{"event": "order.placed", "flag": true, "order": map[string]any{
				"id": "A-1", "total": json.Number("12.5"), "missing": nil, "lines": []any{map[string]any{"sku": "x"}, nil}}}},
		{Op: core.OpMessage, Payload: map[string]any{"event": 7, "flag": "Y", "order": []any{"id"}, "missing": "x"}},
		{Op: core.OpMessage, Payload: "text"},
		{Op: core.OpUpdate, Before: map[string]any{"status": "NEW", "x": nil},
			After: map[string]any{"id": 5, "status": "OLD", "flag": "Y", "num": "1", "count": "3"}},
		{Op: core.OpDelete},
	}
	for _, code := range exprs {
		c := &compiler{idents: map[string]bool{}}
		p := c.compile("x", code)
		if p == nil {
			t.Fatalf("%s does not compile: %v", code, c.errs)
		}
		if p.fast == nil && p.root == noRoot {
			t.Errorf("%s: no fast evaluation", code)
			continue
		}
		for i, ch := range changes {
			st := &state{}
			st.env.fill("erp", ch, true)
			want, err := st.vm.Run(p.prog, &st.env)
			got, err2 := p.run(st)
			if (err2 == nil) != (err == nil) {
				t.Errorf("%s on change %d: run gives error %v, the VM %v", code, i, err2, err)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Errorf("%s on change %d = %#v, the VM says %#v", code, i, got, want)
			}
			if err != nil && p.fast != nil {
				if v, ok := p.fast.value(&st.env); ok {
					t.Errorf("%s on change %d = %#v, the VM fails: %v", code, i, v, err)
				}
			}
			if p.fast != nil {
				if s, ok := p.fast.text(&st.env); ok && (err != nil || want != any(s)) {
					t.Errorf("%s on change %d: text %q, the VM says %#v, %v", code, i, s, want, err)
				}
			}
		}
	}
}
