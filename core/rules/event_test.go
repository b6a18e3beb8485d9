package rules_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

var orderTime = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// orderEvent is an event as a sink reads it from the stream.
func orderEvent() *core.Event {
	return &core.Event{
		ID:              "0b7e2d9c-1f7a-5d4e-9a51-3c2b1a0f9e88",
		Source:          "/erp/orders",
		SpecVersion:     core.SpecVersion,
		Type:            "com.acme.order.accepted",
		Subject:         "orders/A-1",
		Time:            orderTime,
		DataContentType: "application/json",
		DataSchema:      "urn:acme:schema:order:1",
		PartitionKey:    "A-1",
		Data: json.RawMessage(`{"order_id":"A-1","total":12345678901234567890.123,"qty":3,"code":42,` +
			`"flag":"Y","name":"  Ann ","empty":"","customer":{"id":"C-7","name":null},"lines":[{"sku":"X","qty":1}],` +
			`"Order No":"A-1","at":"2024-05-01T10:00:00Z"}`),
	}
}

// asJSON renders v as JSON, numbers as they are, for comparisons.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return string(b)
}

func TestEventExpressions(t *testing.T) {
	tests := []struct {
		name, expr, want string
	}{
		{"id", "event.id", `"0b7e2d9c-1f7a-5d4e-9a51-3c2b1a0f9e88"`},
		{"type", "event.type", `"com.acme.order.accepted"`},
		{"source", "event.source", `"/erp/orders"`},
		{"subject", "event.subject", `"orders/A-1"`},
		{"time", "event.time", `"2024-05-01T10:00:00Z"`},
		{"time is a time", "event.time.Year() == 2024 && event.time < now()", `true`},
		{"partition key", "event.partitionkey", `"A-1"`},
		{"data schema", "event.dataschema", `"urn:acme:schema:order:1"`},
		{"data content type", "event.datacontenttype", `"application/json"`},
		{"sink", "sink", `"warehouse"`},
		{"data field", "event.data.order_id", `"A-1"`},
		{"exact number", "event.data.total", `12345678901234567890.123`},
		{"exact number as text", "string(event.data.total)", `"12345678901234567890.123"`},
		{"nested field", "event.data.customer.id", `"C-7"`},
		{"null field", "event.data.customer.name", `null`},
		{"missing field", "event.data.missing", `null`},
		{"optional chain", "event.data?.nothing?.deeper", `null`},
		{"odd field name", `event.data["Order No"]`, `"A-1"`},
		{"list item", "event.data.lines[0].sku", `"X"`},
		{"number comparison", "event.data.total > 100 && event.data.qty == 3", `true`},
		{"number arithmetic", "event.data.qty * 2 + event.data.code", `48`},
		{"number in list", "event.data.qty in [1, 3]", `true`},
		{"number is not text", `event.data.code == "42"`, `false`},
		{"string compare", `event.type == "com.acme.order.accepted" && event.data.flag == "Y"`, `true`},
		{"concatenation", `"https://wms.local/orders/" + event.data.order_id`, `"https://wms.local/orders/A-1"`},
		{"coalesce", `coalesce(event.data.missing, event.data.empty, sink)`, `"warehouse"`},
		{"trim", "trim(event.data.name)", `"Ann"`},
		{"decimal", `decimal("12.50")`, `12.50`},
		{"int", "int(event.data.code) + 1", `43`},
		{"bool", "bool(event.data.flag)", `true`},
		{"json keeps digits", "json(event.data.customer)", `"{\"id\":\"C-7\",\"name\":null}"`},
		{"parse a time", `date(event.data.at) == event.time`, `true`},
		{"filter the lines", "len(filter(event.data.lines, #.qty > 0))", `1`},
		{"whole data", "event.data.lines", `[{"qty":1,"sku":"X"}]`},
	}
	ev := orderEvent()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := rules.CompileEvent("sinks[0].when", tt.expr)
			if err != nil {
				t.Fatalf("CompileEvent: %v", err)
			}
			v, err := p.Eval(ev, "warehouse")
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got := asJSON(t, v); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.expr, got, tt.want)
			}
		})
	}
}

func TestEventTimeIsATime(t *testing.T) {
	p, err := rules.CompileEvent("sinks[0].map.at", "event.time")
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Eval(orderEvent(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if at, ok := v.(time.Time); !ok || !at.Equal(orderTime) {
		t.Errorf("event.time = %#v, want the time.Time %v", v, orderTime)
	}
}

func TestEventDataIsExact(t *testing.T) {
	p, err := rules.CompileEvent("sinks[0].map", "event.data.total")
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Eval(orderEvent(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if v != any(json.Number("12345678901234567890.123")) {
		t.Errorf("event.data.total = %#v, want the json.Number 12345678901234567890.123", v)
	}
}

func TestCompileEventErrors(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"unknown variable", `record.id == 1`, []string{"unknown name record", "(column 1)", "event.data"}},
		{"a change's variable", `after.total > 1`, []string{"unknown name after", "(column 1)"}},
		{"unknown attribute", `event.total > 1`, []string{"event has no attribute total", "(column 7)", "below event.data"}},
		{"does not parse", `event.data.total >`, []string{"does not compile", "column"}},
		{"unknown function", `hash(event.id)`, []string{"hash"}},
		{"type mismatch", `sink + 1`, []string{"mismatched types"}},
		{"changed", `changed("status")`, []string{"changed()", "event.data"}},
		{"the event whole", `json(event)`, []string{"reads the event whole"}},
		{"empty", `  `, []string{"empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.CompileEvent("sinks[2].when", tt.expr)
			var fe *core.FieldError
			if !errors.As(err, &fe) || fe.Path != "sinks[2].when" {
				t.Fatalf("CompileEvent(%q) = %v, want a *core.FieldError at sinks[2].when", tt.expr, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCompileEventCondition(t *testing.T) {
	if _, err := rules.CompileEventCondition("sinks[0].when", "event.type"); err == nil || !strings.Contains(err.Error(), "bool") {
		t.Errorf("a string condition compiles: %v", err)
	}
	p, err := rules.CompileEventCondition("sinks[0].when", "event.data.total > 100")
	if err != nil {
		t.Fatal(err)
	}
	held, err := p.Holds(rules.NewEventEnv(orderEvent(), "s"))
	if err != nil || !held {
		t.Errorf("Holds = %v, %v, want true", held, err)
	}
	// A value of the data has no type until it runs.
	p, err = rules.CompileEventCondition("sinks[0].when", "event.data.order_id")
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Holds(rules.NewEventEnv(orderEvent(), "s"))
	var ee *rules.EventError
	if !errors.As(err, &ee) || ee.Path != "sinks[0].when" || !strings.Contains(err.Error(), "not a boolean") {
		t.Errorf("Holds of a string = %v, want an *EventError saying it is not a boolean", err)
	}
}

func TestEventText(t *testing.T) {
	tests := []struct {
		name, expr, want, err string
	}{
		{"string", `"https://wms.local/orders/" + event.data.order_id`, "https://wms.local/orders/A-1", ""},
		{"exact number", "event.data.total", "12345678901234567890.123", ""},
		{"time", "event.time", "2024-05-01T10:00:00Z", ""},
		{"nil", "event.data.missing", "", ""},
		{"object", "event.data.customer", "", "object"},
		{"list", "event.data.lines", "", "list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := rules.CompileEvent("sinks[0].config.url", tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Text(rules.NewEventEnv(orderEvent(), "s"))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "sinks[0].config.url") {
					t.Errorf("Text = %q, %v, want an error at sinks[0].config.url saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Text = %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestEventRunErrors(t *testing.T) {
	noData := orderEvent()
	noData.Data = nil
	broken := orderEvent()
	broken.Data = json.RawMessage(`{"order_id": "A-1"`)
	tests := []struct {
		name, expr string
		ev         *core.Event
		column     int
		want       string
	}{
		{"field of no data", "event.data.customer.id", noData, 12, "cannot fetch customer from <nil>; read optional fields with ?."},
		{"field of a missing object", "event.data.nothing.id", orderEvent(), 20, "cannot fetch id from <nil>"},
		{"data that is not JSON", "event.data.order_id", broken, 0, "event.data cannot be read"},
		{"conversion", "int(event.data.order_id)", orderEvent(), 0, "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := rules.CompileEvent("sinks[1].map.id", tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Eval(tt.ev, "s")
			var ee *rules.EventError
			if !errors.As(err, &ee) {
				t.Fatalf("Eval = %v, want an *EventError", err)
			}
			if ee.Path != "sinks[1].map.id" || ee.EventID != tt.ev.ID || (tt.column > 0 && ee.Column != tt.column) {
				t.Errorf("error at %s, column %d, event %s; want sinks[1].map.id, column %d, event %s", ee.Path, ee.Column, ee.EventID, tt.column, tt.ev.ID)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.ev.ID) {
				t.Errorf("error %q does not say %q and the event id", err, tt.want)
			}
		})
	}
}

func TestEventDeadLetter(t *testing.T) {
	p, err := rules.CompileEvent("sinks[0].when", `event.data.total > 0 || deadLetter("negative total " + string(event.data.total))`)
	if err != nil {
		t.Fatal(err)
	}
	ev := orderEvent()
	ev.Data = json.RawMessage(`{"total": -1.50}`)
	_, err = p.Eval(ev, "s")
	var dl *rules.DeadLetterError
	if !errors.As(err, &dl) || dl.Reason != "negative total -1.50" {
		t.Fatalf("Eval = %v, want a *DeadLetterError with the reason", err)
	}
	if want := "sinks[0].when: dead-lettered: negative total -1.50"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestEventDataOfAnotherContentType(t *testing.T) {
	ev := orderEvent()
	ev.DataContentType = "text/csv"
	ev.Data = []byte("A-1;3")
	p, err := rules.CompileEvent("sinks[0].map", `split(event.data, ";")[1]`)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := p.Eval(ev, "s"); err != nil || v != "3" {
		t.Errorf("Eval = %#v, %v, want the text's second field", v, err)
	}
}

// TestEventEnvDecodesDataOnce shows that programs evaluated in one
// EventEnv share one decoding of the data, and that a program that does
// not read the data does not decode it.
func TestEventEnvDecodesDataOnce(t *testing.T) {
	compile := func(code string) *rules.EventProgram {
		t.Helper()
		p, err := rules.CompileEvent("x", code)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	customer, data := compile("event.data.customer"), compile("event.data")
	env := rules.NewEventEnv(orderEvent(), "s")
	a, err := customer.EvalEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	b, err := data.EvalEnv(env)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b.(map[string]any)["customer"]).UnsafePointer() {
		t.Error("two programs over one EventEnv decoded the data twice")
	}

	// Reset moves to another event, whose data is its own.
	next := orderEvent()
	next.Data = json.RawMessage(`{"customer": {"id": "C-8"}}`)
	env.Reset(next, "s")
	c, err := customer.EvalEnv(env)
	if err != nil || asJSON(t, c) != `{"id":"C-8"}` {
		t.Errorf("after Reset, event.data.customer = %v, %v, want the next event's", c, err)
	}
	if asJSON(t, a) != `{"id":"C-7","name":null}` {
		t.Errorf("a value from before Reset changed: %v", a)
	}

	// Data that is not JSON is an error only for programs that read it.
	broken := orderEvent()
	broken.Data = json.RawMessage(`{`)
	env.Reset(broken, "s")
	if v, err := compile(`event.type + "/" + event.subject + "/" + sink`).EvalEnv(env); err != nil {
		t.Errorf("a program that does not read the data = %v, %v: it decoded the data", v, err)
	}
	if _, err := customer.EvalEnv(env); err == nil {
		t.Error("a program that reads data that is not JSON gives no error")
	}
}

func TestEventData(t *testing.T) {
	tests := []struct {
		name string
		data any
		want string
	}{
		{"one expression", "event.data.customer", `{"id":"C-7","name":null}`},
		{"a mapping", map[string]any{"order_id": "event.data.order_id", "total": "event.data.total", "sink": "sink"},
			`{"order_id":"A-1","sink":"warehouse","total":12345678901234567890.123}`},
		{"nested mappings and lists", map[string]any{
			"order": map[string]any{"id": "event.data.order_id", "customer": map[any]any{"id": "event.data.customer.id"}},
			"tags":  []any{`"erp"`, "event.type"},
		}, `{"order":{"customer":{"id":"C-7"},"id":"A-1"},"tags":["erp","com.acme.order.accepted"]}`},
		{"constants", map[string]any{"version": 2, "live": true, "none": nil, "rate": 0.5},
			`{"live":true,"none":null,"rate":0.5,"version":2}`},
		{"times become text", map[string]any{"at": "event.time", "stamp": `{"t": event.time}`},
			`{"at":"2024-05-01T10:00:00Z","stamp":{"t":"2024-05-01T10:00:00Z"}}`},
		{"the data whole", "event.data.lines", `[{"qty":1,"sku":"X"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := rules.CompileEventData("sinks[0].map", tt.data)
			if err != nil {
				t.Fatalf("CompileEventData: %v", err)
			}
			v, err := d.Eval(orderEvent(), "warehouse")
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got := asJSON(t, v); got != tt.want {
				t.Errorf("Eval = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCompileEventDataErrors(t *testing.T) {
	tests := []struct {
		name  string
		data  any
		paths []string
	}{
		{"a leaf", map[string]any{"id": "event.data.id", "total": "event.total"}, []string{"sinks[0].map.total"}},
		{"a nested leaf", map[string]any{"customer": map[string]any{"id": "customer.id"}}, []string{"sinks[0].map.customer.id"}},
		{"a list item", map[string]any{"tags": []any{`"a"`, "event.data.("}}, []string{"sinks[0].map.tags[1]"}},
		{"every problem", map[string]any{"a": "after.x", "b": "sink +", "c": "event.id"}, []string{"sinks[0].map.a", "sinks[0].map.b"}},
		{"a key that is not a string", map[any]any{1: "event.id"}, []string{"sinks[0].map"}},
		{"a value of an odd type", map[string]any{"a": struct{}{}}, []string{"sinks[0].map.a"}},
		{"the whole expression", "event.", []string{"sinks[0].map"}},
		{"nothing", nil, []string{"sinks[0].map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.CompileEventData("sinks[0].map", tt.data)
			if err == nil {
				t.Fatal("CompileEventData gives no error")
			}
			var paths []string
			for _, e := range flattenErrors(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %v is not a *core.FieldError", e)
					continue
				}
				paths = append(paths, fe.Path)
			}
			if fmt.Sprint(paths) != fmt.Sprint(tt.paths) {
				t.Errorf("errors at %v, want at %v: %v", paths, tt.paths, err)
			}
		})
	}
}

func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrors(e)...)
		}
		return out
	}
	return []error{err}
}

func TestEventDataRunError(t *testing.T) {
	d, err := rules.CompileEventData("sinks[0].map", map[string]any{"id": "event.data.order_id", "n": map[string]any{"x": "int(event.data.name)"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Eval(orderEvent(), "s")
	var ee *rules.EventError
	if !errors.As(err, &ee) || ee.Path != "sinks[0].map.n.x" {
		t.Errorf("Eval = %v, want an *EventError at sinks[0].map.n.x", err)
	}
}

func TestEventConcurrentEval(t *testing.T) {
	when, err := rules.CompileEvent("w", `event.data.total > 100 && sink == "s"`)
	if err != nil {
		t.Fatal(err)
	}
	mapping, err := rules.CompileEventData("m", map[string]any{"id": "event.data.order_id", "n": "event.data.qty + 1"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ev := orderEvent()
				ev.Data = json.RawMessage(fmt.Sprintf(`{"order_id": "A-%d", "qty": %d, "total": 500}`, g, i))
				if v, err := when.Eval(ev, "s"); err != nil || v != true {
					errs <- fmt.Errorf("when = %v, %v", v, err)
					return
				}
				v, err := mapping.Eval(ev, "s")
				if err != nil {
					errs <- err
					return
				}
				m := v.(map[string]any)
				if m["id"] != fmt.Sprintf("A-%d", g) || m["n"] != i+1 {
					errs <- fmt.Errorf("goroutine %d event %d: map = %v", g, i, m)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSinkFuncs(t *testing.T) {
	when, err := rules.CompileEventCondition("sinks[0].when", `event.type == "com.acme.order.accepted" && event.data.total > 100`)
	if err != nil {
		t.Fatal(err)
	}
	data, err := rules.CompileEventData("sinks[0].map", map[string]any{"id": "event.data.order_id", "sink": "sink"})
	if err != nil {
		t.Fatal(err)
	}
	if f, m := rules.SinkFuncs("wms", nil, nil); f != nil || m != nil {
		t.Error("SinkFuncs without programs gives functions; the runtime reads nil as every event and no mapping")
	}
	filter, mapper := rules.SinkFuncs("wms", when, data)
	ev := orderEvent()
	if held, err := filter(ev); err != nil || !held {
		t.Errorf("filter = %v, %v, want true", held, err)
	}
	if v, err := mapper(ev); err != nil || asJSON(t, v) != `{"id":"A-1","sink":"wms"}` {
		t.Errorf("map = %v, %v", v, err)
	}
	other := orderEvent()
	other.Type = "com.acme.order.cancelled"
	other.Data = json.RawMessage(`{"order_id": "A-2", "total": 500}`)
	if held, err := filter(other); err != nil || held {
		t.Errorf("filter of another type = %v, %v, want false", held, err)
	}
	if v, err := mapper(other); err != nil || asJSON(t, v) != `{"id":"A-2","sink":"wms"}` {
		t.Errorf("map of the next event = %v, %v: it must not see the last event's data", v, err)
	}
}
