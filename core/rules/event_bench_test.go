package rules_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// benchSink is what a sink evaluates per event: a when, a URL and a
// 10-field map.
type benchSink struct {
	when *rules.EventProgram
	url  *rules.EventProgram
	body *rules.EventData
}

func newBenchSink(b *testing.B) benchSink {
	b.Helper()
	when, err := rules.CompileEventCondition("sinks[0].when", `event.type == "com.acme.order.accepted" && event.data.total > 100`)
	if err != nil {
		b.Fatal(err)
	}
	url, err := rules.CompileEvent("sinks[0].config.url", `"https://wms.local/api/orders/" + event.data.order_id`)
	if err != nil {
		b.Fatal(err)
	}
	body, err := rules.CompileEventData("sinks[0].map", map[string]any{
		"order_id":    "event.data.order_id",
		"customer_id": "event.data.customer.id",
		"status":      "event.data.status",
		"currency":    "event.data.currency",
		"total":       "event.data.total",
		"lines":       "len(event.data.lines)",
		"warehouse":   "event.data.warehouse",
		"priority":    `event.data.priority == "high"`,
		"event_id":    "event.id",
		"at":          "event.time",
	})
	if err != nil {
		b.Fatal(err)
	}
	return benchSink{when: when, url: url, body: body}
}

// benchEvent is an order event of about 1 KB.
func benchEvent() *core.Event {
	ev := orderEvent()
	var lines []string
	for i := range 12 {
		lines = append(lines, fmt.Sprintf(`{"sku":"SKU-%05d","qty":%d,"price":19.90,"name":"Article number %d"}`, i, i+1, i))
	}
	ev.Data = json.RawMessage(`{"order_id":"A-10042","customer":{"id":"C-77","name":"Ann Example","email":"ann@example.com"},` +
		`"status":"NEW","currency":"EUR","total":1299.90,"warehouse":"BER-1","priority":"high","channel":"web",` +
		`"lines":[` + strings.Join(lines, ",") + `]}`)
	return ev
}

func (s benchSink) run(b *testing.B, env *rules.EventEnv) {
	if held, err := s.when.Holds(env); err != nil || !held {
		b.Fatalf("when = %v, %v", held, err)
	}
	if _, err := s.url.Text(env); err != nil {
		b.Fatal(err)
	}
	if _, err := s.body.EvalEnv(env); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEventSink measures what a sink evaluates per event (a when, a
// URL and a 10-field map over a 1 KB event), sharing one EventEnv, so the
// data is decoded once. Run it with -cpu 1 for the single-core figure.
func BenchmarkEventSink(b *testing.B) {
	s := newBenchSink(b)
	ev := benchEvent()
	b.Logf("event data: %d bytes", len(ev.Data))
	var env rules.EventEnv
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		env.Reset(ev, "warehouse")
		s.run(b, &env)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

// BenchmarkEventSinkUnshared is the same with Eval on each program, each
// decoding the data itself: what sharing an EventEnv saves.
func BenchmarkEventSinkUnshared(b *testing.B) {
	s := newBenchSink(b)
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := s.when.Eval(ev, "warehouse"); err != nil || v != true {
			b.Fatalf("when = %v, %v", v, err)
		}
		if _, err := s.url.Eval(ev, "warehouse"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.body.Eval(ev, "warehouse"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
