package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

// prunedRules read payloads in every way the path analysis knows: plain
// paths, len() of a path, a path read whole beside paths below it, an
// index and an optional chain, comparisons of numbers, functions over
// paths, and a deadLetter.
var prunedRules = []core.Rule{
	{
		Name: "placed", Type: "com.example.order.placed",
		When:    `payload.event == "order.placed"`,
		Subject: `payload.order.id`, PartitionKey: `payload.order.id`,
		Data: map[string]any{
			"id": "payload.order.id", "customer": "payload.order.customer", "total": "payload.order.total",
			"lines": "len(payload.order.lines)", "tags": "len(payload.tags)", "name": "len(payload.name)",
		},
	},
	{
		Name: "first_line", Type: "com.example.order.line",
		When: `len(payload.order.lines) > 0 && payload.order.lines[0] != nil`,
		Data: map[string]any{"sku": "payload.order.lines[0].sku", "c": "payload.meta?.c", "a": "payload.a.b.c"},
	},
	{
		Name: "nested", Type: "com.example.thing.seen",
		When: `payload.a != nil && len(payload.a) >= 0`,
		Data: map[string]any{"a": "payload.a", "b": "payload.a.b", "s": `string(payload.x)`, "n": "payload.n > 1"},
	},
	{
		Name: "dead", Type: "com.example.thing.refused",
		When: `payload.refuse == true && deadLetter("refused " + string(payload.why))`,
	},
}

// prunedCatalog validates the data of prunedRules, some of it built from
// whole subtrees of the payload.
func prunedCatalog(t testing.TB) *catalog.Catalog {
	obj := func(props map[string]any, required ...any) map[string]any {
		if required == nil {
			required = []any{}
		}
		return map[string]any{"type": "object", "properties": props, "required": required}
	}
	cat, err := catalog.New([]core.EventType{
		{Type: "com.example.order.placed", Version: "1", Schema: obj(map[string]any{
			"id": map[string]any{"type": "string"}, "lines": map[string]any{"type": "integer", "maximum": 3},
		}, "id")},
		{Type: "com.example.order.line", Version: "1", Schema: obj(map[string]any{"sku": map[string]any{"type": "string"}})},
		{Type: "com.example.thing.seen", Version: "1", Schema: obj(map[string]any{
			"a": obj(map[string]any{"b": map[string]any{"type": "array", "maxItems": 2, "items": map[string]any{"type": "number"}}}, "b"),
		}, "a")},
		{Type: "com.example.thing.refused", Version: "1", Schema: map[string]any{}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func prunedTree(t testing.TB) (*rules.Set, *pathNode) {
	set, err := rules.Compile("c", prunedRules, prunedCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	paths, all := set.PayloadPaths()
	if all {
		t.Fatalf("the rules read whole payloads: %v", paths)
	}
	return set, newPathTree(paths)
}

// FuzzPrunedPayloadRules checks, for arbitrary JSON bodies, that the rules
// yield the same events, data and errors (schema violations included) on
// the pruned payload as on the whole one, that the dead-letter record of the pruned change is that of
// the whole one, and that both parses accept the same bodies.
func FuzzPrunedPayloadRules(f *testing.F) {
	for _, s := range []string{
		`{"event":"order.placed","order":{"id":"o-1","customer":"c","total":12.5,"lines":[{"sku":"a"},{"sku":"b"}]},"tags":{"x":1,"x":2},"name":"héllo"}`,
		`{"event":"order.placed","order":{"id":7,"lines":"abc"},"tags":[1,2,3],"name":[1]}`,
		`{"order":{"lines":[null]},"meta":{"c":[1,{"d":2}]},"a":{"b":{"c":"x"}}}`,
		`{"a":{"b":[1,2]},"x":true,"n":3,"refuse":true,"why":"no"}`,
		`{"a":[1],"order":[1,2],"event":"order.placed"}`, `{"a":"s","order":"s"}`, `{"event":"order.placed","order":{}}`,
		`[1,2]`, `"x"`, `null`, `{}`, `{"a":{"b":{}}}`, `{"order":{"lines":[]},"event":"order.placed","tags":{}}`,
		`{"x":"\u00e9\ud800","a":{"b":"\n"}}`, `{"event":"order.placed","order":{"id":"1","lines":[[[[]]]],"total":1e400}}`,
	} {
		f.Add([]byte(s))
	}
	set, tree := prunedTree(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		full, ferr := decodeJSON(body)
		pruned, perr := decodeJSONPruned(body, tree)
		if (ferr == nil) != (perr == nil) {
			t.Fatalf("whole parse error %v, pruned parse error %v", ferr, perr)
		}
		if ferr != nil {
			return
		}
		change := func(p any, prunedFlag bool) *core.Change {
			return &core.Change{
				Op: core.OpMessage, Payload: p, PayloadPruned: prunedFlag, Raw: body,
				Meta:     map[string]any{"delivery_id": "d-1"},
				Source:   core.SourceInfo{System: "webhook", CommitTime: time.Unix(1700000000, 0).UTC()},
				Position: core.Position{Version: PositionVersion, Data: []byte("d-1")},
			}
		}
		wch, pch := change(full, false), change(pruned, true)
		want, got := set.Apply(wch), set.Apply(pch)
		if len(want) != len(got) {
			t.Fatalf("%d results on the pruned payload, %d on the whole one", len(got), len(want))
		}
		for i := range want {
			if w, g := resultString(t, want[i]), resultString(t, got[i]); w != g {
				t.Errorf("result %d on the pruned payload:\n%s\nwant:\n%s", i, g, w)
			}
		}
		wraw, err := wch.MarshalRaw()
		if err != nil {
			t.Fatal(err)
		}
		praw, err := pch.MarshalRaw()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wraw, praw) {
			t.Errorf("dead-letter record of the pruned change:\n%s\nwant:\n%s", praw, wraw)
		}
	})
}

func resultString(t *testing.T, r rules.Result) string {
	ev, err := json.Marshal(r.Event)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(r.Data)
	if err != nil {
		data = []byte("unencodable: " + err.Error())
	}
	e := ""
	if r.Err != nil {
		e = r.Err.Error()
	}
	return r.Rule + "\n" + string(ev) + "\n" + string(data) + "\n" + e
}

func TestDecodeJSONPruned(t *testing.T) {
	_, tree := prunedTree(t)
	tests := []struct {
		name string
		body string
		want any
	}{
		{
			name: "fields no path reaches are left out",
			body: `{"event":"e","other":{"big":[1,2,3]},"order":{"id":"o","note":"n","lines":[{"sku":"a"},{"sku":"b"}]}}`,
			want: map[string]any{"event": "e", "order": map[string]any{"id": "o", "lines": []any{map[string]any{"sku": "a"}, map[string]any{"sku": "b"}}}},
		},
		{
			name: "an array whose length alone is read holds nils",
			body: `{"tags":[{"x":1},2,"3"],"zz":1}`,
			want: map[string]any{"tags": []any{nil, nil, nil}},
		},
		{
			name: "an object whose length is read keeps its keys",
			body: `{"tags":{"x":1,"y":[2],"x":3}}`,
			want: map[string]any{"tags": map[string]any{"x": nil, "y": nil}},
		},
		{
			name: "a string whose length is read is whole",
			body: `{"name":"héllo"}`,
			want: map[string]any{"name": "héllo"},
		},
		{
			name: "a value that is not an object on a path is whole",
			body: `{"order":[{"id":1}],"a":"s"}`,
			want: map[string]any{"order": []any{map[string]any{"id": json.Number("1")}}, "a": "s"},
		},
		{
			name: "a body that is not an object is whole",
			body: `[1,{"a":2}]`,
			want: []any{json.Number("1"), map[string]any{"a": json.Number("2")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeJSONPruned([]byte(tt.body), tree)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeJSONPrunedChecksSkippedSyntax(t *testing.T) {
	_, tree := prunedTree(t)
	for _, body := range []string{
		`{"other":[1,}`, `{"other":{"x" 1}}`, `{"tags":[1 2]}`, `{"other":"\x01"}`, `{"other":tru}`, `{"other":01}`,
		`{"order":{"id":"o"}} x`, `{"other":"\q"}`,
	} {
		if _, err := decodeJSONPruned([]byte(body), tree); err == nil {
			t.Errorf("%s: no error", body)
		}
		if _, err := decodeJSON([]byte(body)); err == nil {
			t.Errorf("%s: the whole parse accepts it", body)
		}
	}
}

// TestRecordChangeReparsesForOtherPaths checks that a delivery the handler
// pruned to the paths of earlier rules is parsed again for the current
// ones, and parsed whole when the rules read whole payloads.
func TestRecordChangeReparsesForOtherPaths(t *testing.T) {
	_, tree := prunedTree(t)
	body := []byte(`{"event":"e","order":{"id":"o"},"q":1}`)
	old := newPathTree([]core.PayloadPath{{Fields: []string{"q"}}})
	p, err := decodeJSONPruned(body, old)
	if err != nil {
		t.Fatal(err)
	}
	rec := &record{id: "d", body: body, meta: recordMeta{ContentType: "application/json"}, payload: p, parsed: true, prunedBy: old}
	ch := rec.change(tree)
	want := map[string]any{"event": "e", "order": map[string]any{"id": "o"}}
	if !reflect.DeepEqual(ch.Payload, want) || !ch.PayloadPruned {
		t.Errorf("payload %#v (pruned %v), want %#v pruned", ch.Payload, ch.PayloadPruned, want)
	}
	ch = rec.change(nil)
	whole := map[string]any{"event": "e", "order": map[string]any{"id": "o"}, "q": json.Number("1")}
	if !reflect.DeepEqual(ch.Payload, whole) || ch.PayloadPruned {
		t.Errorf("payload %#v (pruned %v), want the whole %#v", ch.Payload, ch.PayloadPruned, whole)
	}
}

// BenchmarkDecodeJSONPayload parses the 1 KB body of bench/webhook.sh
// whole and pruned to the paths its rule reads.
func BenchmarkDecodeJSONPayload(b *testing.B) {
	body, tree := benchPayload(b)
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pruned", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeJSONPruned(body, tree); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchPayload returns the 1 KB body of bench/webhook.sh and the tree of
// the paths its rule reads.
func benchPayload(tb testing.TB) ([]byte, *pathNode) {
	var lines []string
	for i := 0; len(strings.Join(lines, ",")) < 720; i++ {
		lines = append(lines, fmt.Sprintf(`{"sku":"SKU-%05d","qty":%d,"price":%d.99}`, i, i%5+1, i*3+7))
	}
	s := fmt.Sprintf(`{"event":"order.placed","order":{"id":"o-1001","customer":"c-42","total":129.5,"currency":"EUR","lines":[%s]},"note":"`, strings.Join(lines, ","))
	s += strings.Repeat("x", max(0, 1022-len(s))) + `"}`
	set, err := rules.Compile("bench", []core.Rule{{
		Name: "order_placed", Type: "com.example.order.placed",
		When: `payload.event == "order.placed"`, Subject: "payload.order.id", PartitionKey: "payload.order.id",
		Data: map[string]any{
			"order_id": "payload.order.id", "customer_id": "payload.order.customer", "total": "payload.order.total",
			"currency": "payload.order.currency", "lines": "len(payload.order.lines)",
		},
	}}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	paths, all := set.PayloadPaths()
	if all {
		tb.Fatal("the rule reads whole payloads")
	}
	return []byte(s), newPathTree(paths)
}

// TestDecodeJSONPrunedAllocatedBytes checks that a pruned parse of the
// 1 KB body allocates less than the body's size: the few values read are
// copied, not the whole document (the handler parses every delivery).
func TestDecodeJSONPrunedAllocatedBytes(t *testing.T) {
	body, tree := benchPayload(t)
	const runs = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, err := decodeJSONPruned(body, tree); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per >= uint64(len(body)) {
		t.Errorf("decodeJSONPruned allocates %d bytes per parse of a %d-byte body, want fewer than the body", per, len(body))
	}
}
