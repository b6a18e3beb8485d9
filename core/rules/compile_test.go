package rules_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

func validRules() []core.Rule {
	return []core.Rule{
		{
			Name: "order_accepted", When: `op == "create"`, Type: "com.acme.order.accepted",
			Subject: `"orders/" + string(after.id)`, PartitionKey: "after.id",
			Data: map[string]any{"order_id": "after.id", "total": "after.total", "customer": map[string]any{"id": "after.customer_id"}},
		},
		{
			Name: "order_shipped", When: `op == "update" && changed("status")`, Type: "com.acme.order.shipped",
			Time: "after.shipped_at", Source: `"/erp/orders"`, Data: "after",
		},
	}
}

func testCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.New([]core.EventType{
		{Type: "com.acme.order.accepted", Version: "1", Schema: map[string]any{"type": "object"}},
		{Type: "com.acme.order.shipped", Version: "1", Schema: map[string]any{"type": "object"}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestCompileValid(t *testing.T) {
	set, err := rules.Compile("erp", validRules(), testCatalog(t))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if set.Len() != 2 {
		t.Errorf("Len() = %d, want 2", set.Len())
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(rs []core.Rule)
		noCat  bool
		path   string
		msg    string
	}{
		{"when does not parse", func(rs []core.Rule) { rs[0].When = `op == ` }, false, "[0].when", "column"},
		{"when not boolean", func(rs []core.Rule) { rs[0].When = `len(op)` }, false, "[0].when", "bool"},
		{"when unknown variable", func(rs []core.Rule) { rs[0].When = `record.id == 1` }, false, "[0].when", "unknown name record"},
		{"unknown source field", func(rs []core.Rule) { rs[1].When = `source.tabel == "x"` }, false, "[1].when", "tabel"},
		{"subject does not parse", func(rs []core.Rule) { rs[0].Subject = `"orders/" +` }, false, "[0].subject", "does not compile"},
		{"partition key unknown function", func(rs []core.Rule) { rs[0].PartitionKey = `hash(after.id)` }, false, "[0].partition_key", "hash"},
		{"time does not parse", func(rs []core.Rule) { rs[1].Time = `after.(` }, false, "[1].time", "does not compile"},
		{"source expression does not parse", func(rs []core.Rule) { rs[1].Source = `"/erp/" +` }, false, "[1].source", "does not compile"},
		{"data leaf does not parse", func(rs []core.Rule) {
			rs[0].Data.(map[string]any)["total"] = "after.total *"
		}, false, "[0].data.total", "does not compile"},
		{"nested data leaf", func(rs []core.Rule) {
			rs[0].Data.(map[string]any)["customer"].(map[string]any)["id"] = "after..id"
		}, false, "[0].data.customer.id", "does not compile"},
		{"data list item", func(rs []core.Rule) { rs[1].Data = []any{"after.id", "after.("} }, false, "[1].data[1]", "does not compile"},
		{"data of an odd type", func(rs []core.Rule) { rs[1].Data = struct{}{} }, false, "[1].data", "expression"},
		{"data expression does not parse", func(rs []core.Rule) { rs[1].Data = "after[" }, false, "[1].data", "does not compile"},
		{"empty name", func(rs []core.Rule) { rs[1].Name = "" }, false, "[1].name", "empty"},
		{"bad name", func(rs []core.Rule) { rs[1].Name = "Order Shipped" }, false, "[1].name", "lowercase"},
		{"duplicate name", func(rs []core.Rule) { rs[1].Name = rs[0].Name }, false, "[1].name", "twice"},
		{"empty type", func(rs []core.Rule) { rs[1].Type = "" }, false, "[1].type", "empty"},
		{"type not in catalog", func(rs []core.Rule) { rs[1].Type = "com.acme.order.lost" }, false, "[1].type", "not in the catalog"},
		{"malformed type without catalog", func(rs []core.Rule) { rs[1].Type = "OrderShipped" }, true, "[1].type", "reverse-DNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := validRules()
			tt.break_(rs)
			cat := testCatalog(t)
			if tt.noCat {
				cat = nil
			}
			_, err := rules.Compile("erp", rs, cat)
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			errs := core.Flatten(err)
			if len(errs) != 1 {
				t.Fatalf("Compile = %d errors, want 1:\n%v", len(errs), err)
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

func TestCompileReportsEveryProblem(t *testing.T) {
	rs := validRules()
	rs[0].When = "op =="
	rs[0].Data.(map[string]any)["total"] = "after.total +"
	rs[1].Name = ""
	rs[1].Type = "com.acme.nope"
	_, err := rules.Compile("erp", rs, testCatalog(t))
	var paths []string
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if errors.As(e, &fe) {
			paths = append(paths, fe.Path)
		}
	}
	want := "[0].when [0].data.total [1].name [1].type"
	if got := strings.Join(paths, " "); got != want {
		t.Errorf("paths = %s, want %s", got, want)
	}
}

func TestEmptyCatalogAllowsAnyType(t *testing.T) {
	rs := validRules()
	rs[0].Type = "com.acme.undeclared.thing"
	set, err := rules.Compile("erp", rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := set.Apply(&core.Change{Op: core.OpCreate, After: map[string]any{"id": 1}})
	if len(res) != 1 || res[0].Err != nil || res[0].Event.DataSchema != "" {
		t.Fatalf("Apply = %+v, want one unvalidated event", res)
	}
}

func TestWhenNotBooleanAtRunTime(t *testing.T) {
	set, err := rules.Compile("erp", []core.Rule{{Name: "r", Type: "com.acme.x", When: "after.flag"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := set.Apply(&core.Change{Op: core.OpCreate, After: map[string]any{"flag": "Y"}})
	var re *rules.RuleError
	if len(res) != 1 || !errors.As(res[0].Err, &re) || re.Field != "when" || re.Rule != "r" {
		t.Fatalf("Apply = %+v, want a RuleError on when", res)
	}
}

func TestEventIDs(t *testing.T) {
	set, err := rules.Compile("erp", []core.Rule{
		{Name: "a", Type: "com.acme.x"},
		{Name: "b", Type: "com.acme.x"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := &core.Change{Op: core.OpCreate, Position: core.Position{Version: 1, Data: []byte("lsn:1")}}
	first, again := set.Apply(ch), set.Apply(ch)
	if first[0].Event.ID != again[0].Event.ID || first[1].Event.ID != again[1].Event.ID {
		t.Error("the same change gives different ids")
	}
	if first[0].Event.ID == first[1].Event.ID {
		t.Error("two rules give the same id")
	}
	other := set.Apply(&core.Change{Op: core.OpCreate, Position: core.Position{Version: 1, Data: []byte("lsn:2")}})
	if other[0].Event.ID == first[0].Event.ID {
		t.Error("two positions give the same id")
	}
	if first[0].Event.Time.IsZero() {
		t.Error("an event without commit time has no time")
	}
}

// TestExpressions runs single data expressions against one change.
func TestExpressions(t *testing.T) {
	ch := &core.Change{
		Op:     core.OpUpdate,
		Key:    map[string]any{"id": json.Number("7")},
		Before: map[string]any{"status": "NEW", "total": json.Number("10.50"), "qty": json.Number("2")},
		After: map[string]any{
			"status": "NEW", "total": json.Number("10.5"), "qty": json.Number("3"), "code": json.Number("42"),
			"flag": "Y", "name": "  Ann ", "epoch": int64(1714557600), "raw": []byte("hi"),
			"at": time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), "price_text": "0.10", "empty": "",
			"Order No": "A-1",
		},
		Meta:     map[string]any{"file": "orders.csv"},
		Source:   core.SourceInfo{Table: "orders", CommitTime: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)},
		Position: core.Position{Version: 1, Data: []byte("c:9")},
	}
	tests := []struct {
		name, expr, want string
	}{
		{"exact copy", "after.total", `10.5`},
		{"json.Number arithmetic", "after.qty * 2", `6`},
		{"json.Number float arithmetic", "after.total * 2", `21`},
		{"json.Number comparison", "after.qty > 2 && after.code == 42", `true`},
		{"json.Number in list", "after.qty in [1, 3]", `true`},
		{"string concatenation unharmed", `after.status + "-" + trim(after.name)`, `"NEW-Ann"`},
		{"coalesce skips nil and blank", `coalesce(after.missing, after.empty, "x")`, `"x"`},
		{"coalesce all blank", `coalesce(after.missing, after.empty)`, `""`},
		{"string of json.Number", "string(after.total)", `"10.5"`},
		{"string of time", "toString(after.at)", `"2024-05-01T10:00:00Z"`},
		{"string of nil", "string(after.missing)", `""`},
		{"string of bytes", "string(after.raw)", `"hi"`},
		{"int of json.Number", "int(after.code) + 1", `43`},
		{"int of text", `int(" 12 ")`, `12`},
		{"float of text", `float("1.5")`, `1.5`},
		{"number of text", `number("2.50")`, `2.5`},
		{"decimal keeps digits", "decimal(after.price_text)", `0.10`},
		{"bool of Y", "bool(after.flag)", `true`},
		{"blank", "blank(after.empty) && !blank(after.name)", `true`},
		{"fromUnix", "fromUnix(after.epoch)", `"2024-05-01T10:00:00Z"`},
		{"fromUnixMilli", "fromUnixMilli(1714557600000)", `"2024-05-01T10:00:00Z"`},
		{"changed by value", `changed("total") || changed("status")`, `false`},
		{"changed", `changed("qty")`, `true`},
		{"nil record field", "after?.x?.y", `null`},
		{"nil map", "payload", `null`},
		{"odd field name", `after["Order No"]`, `"A-1"`},
		{"meta", "meta.file", `"orders.csv"`},
		{"key", "key.id", `7`},
		{"source", "source.table + string(source.commit_time)", `"orders2024-05-01T00:00:00Z"`},
		{"position and connector", "position + connector", `"v1:c:9erp"`},
		{"json", `json({"a": after.total})`, `"{\"a\":10.5}"`},
		{"parseJSON keeps digits", `parseJSON("{\"n\": 1.10}")`, `{"n":1.10}`},
		{"bytes become base64", "after.raw", `"aGk="`},
		{"abs of json.Number", "abs(-after.qty)", `3`},
		{"whole record", "before", `{"qty":2,"status":"NEW","total":10.50}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := rules.Compile("erp", []core.Rule{{Name: "r", Type: "com.acme.x", Data: tt.expr}}, nil)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			res := set.Apply(ch)
			if len(res) != 1 || res[0].Err != nil {
				t.Fatalf("Apply = %+v", res)
			}
			if got := string(res[0].Event.Data); got != tt.want {
				t.Errorf("data = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestConcurrentApply(t *testing.T) {
	set, err := rules.Compile("erp", validRules(), testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := &core.Change{Op: core.OpCreate, After: map[string]any{"id": 1, "total": json.Number("2.5")}}
	want := string(set.Apply(ch)[0].Event.Data)
	done := make(chan string)
	for range 4 {
		go func() {
			var bad string
			for range 200 {
				if got := string(set.Apply(ch)[0].Event.Data); got != want {
					bad = got
				}
			}
			done <- bad
		}()
	}
	for range 4 {
		if bad := <-done; bad != "" {
			t.Errorf("concurrent Apply gave %s, want %s", bad, want)
		}
	}
}

// FuzzCompile feeds arbitrary expressions to Compile, which must return an
// error or a Set, never panic; a Set must then apply without panicking.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`op == "create"`, `after.id`, `after?.a?.b`, `coalesce(after.x, 1)`, `changed("x")`,
		`after.total * 2 > 10`, `"a" + string(key.id)`, `{"a": [1, 2]}`, `map(after.items, #.id)`,
		`int(`, `changed()`, `changed(1, 2)`, `after.x ?? 1`, `-after.n`, `fromUnix(payload)`,
	} {
		f.Add(s)
	}
	ch := &core.Change{Op: core.OpCreate, After: map[string]any{"id": json.Number("1"), "total": 3.5}}
	f.Fuzz(func(t *testing.T, code string) {
		for _, r := range []core.Rule{
			{Name: "w", Type: "com.acme.x", When: code},
			{Name: "d", Type: "com.acme.x", Data: map[string]any{"v": code}, Subject: code, PartitionKey: code, Time: code, Source: code},
		} {
			set, err := rules.Compile("erp", []core.Rule{r}, nil)
			if err != nil {
				continue
			}
			set.Apply(ch)
		}
	})
}

// TestMappingData checks a data mapping's event data and Result.Data on
// each path: the per-key pre-check, the full validator when the pre-check
// cannot decide, a schema violation, a failure after the data was built,
// and a mapping without keys.
func TestMappingData(t *testing.T) {
	cat, err := catalog.New([]core.EventType{{
		Type: "com.acme.order.accepted", Version: "1",
		Schema: map[string]any{
			"type": "object", "required": []any{"id"}, "additionalProperties": false,
			"properties": map[string]any{
				"id":    map[string]any{"type": "string"},
				"total": map[string]any{"type": "number", "minimum": 0},
				"at":    map[string]any{"type": "string", "format": "date-time"},
			},
		},
	}, {
		Type: "com.acme.order.empty", Version: "1", Schema: map[string]any{"type": "object"},
	}}, "")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	order := map[string]any{"id": `"A-1"`, "total": "after.total", "at": "after.at"}
	tests := []struct {
		name     string
		rule     core.Rule
		total    any
		want     string // event data, or "" for an error
		wantData map[string]any
	}{
		{"pre-checked", core.Rule{Data: order}, json.Number("12.5"), `{"at":"2024-05-01T10:00:00Z","id":"A-1","total":12.5}`, nil},
		{"decided by the full validator", core.Rule{Data: order}, json.Number("12.50000000000000000001"),
			`{"at":"2024-05-01T10:00:00Z","id":"A-1","total":12.50000000000000000001}`, nil},
		{"schema violation", core.Rule{Data: order}, -1,
			"", map[string]any{"id": "A-1", "total": -1, "at": "2024-05-01T10:00:00Z"}},
		{"failure after the data", core.Rule{Data: order, Subject: "after.missing.x"}, 1,
			"", map[string]any{"id": "A-1", "total": 1, "at": "2024-05-01T10:00:00Z"}},
		{"no keys", core.Rule{Type: "com.acme.order.empty", Data: map[string]any{}}, 1, `{}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rule
			r.Name = "r"
			if r.Type == "" {
				r.Type = "com.acme.order.accepted"
			}
			set, err := rules.Compile("erp", []core.Rule{r}, cat)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			res := set.Apply(&core.Change{Op: core.OpCreate, After: map[string]any{"total": tt.total, "at": at}})
			if len(res) != 1 {
				t.Fatalf("Apply = %+v", res)
			}
			if tt.want == "" {
				if res[0].Err == nil {
					t.Fatalf("Apply gave event %s, want an error", res[0].Event.Data)
				}
				got, _ := json.Marshal(res[0].Data)
				want, _ := json.Marshal(tt.wantData)
				if string(got) != string(want) {
					t.Errorf("Result.Data = %s, want %s", got, want)
				}
				return
			}
			if res[0].Err != nil {
				t.Fatalf("Apply: %v", res[0].Err)
			}
			if got := string(res[0].Event.Data); got != tt.want {
				t.Errorf("data = %s, want %s", got, tt.want)
			}
			if res[0].Data != nil {
				t.Errorf("Result.Data = %v with an event, want nil", res[0].Data)
			}
		})
	}
}

// TestSubjectAndPartitionKey: a partition key written as the subject's
// expression gets the subject's value; a different one is computed on its
// own.
func TestSubjectAndPartitionKey(t *testing.T) {
	tests := []struct {
		name, subject, key string
		wantSubject        string
		wantKey            string
	}{
		{"same expression", "string(after.id)", " string(after.id) ", "7", "7"},
		{"different expressions", `"orders/" + string(after.id)`, "after.customer", "orders/7", "c-1"},
		{"key only", "", "after.customer", "", "c-1"},
	}
	ch := &core.Change{Op: core.OpCreate, After: map[string]any{"id": int64(7), "customer": "c-1"}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.Compile("erp", []core.Rule{{Name: "r", Type: "com.acme.x", Subject: tc.subject, PartitionKey: tc.key}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res := set.Apply(ch)
			if len(res) != 1 || res[0].Err != nil {
				t.Fatalf("Apply = %+v", res)
			}
			if ev := res[0].Event; ev.Subject != tc.wantSubject || ev.PartitionKey != tc.wantKey {
				t.Errorf("subject %q, partition key %q; want %q, %q", ev.Subject, ev.PartitionKey, tc.wantSubject, tc.wantKey)
			}
		})
	}
}
