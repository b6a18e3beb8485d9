package rules_test

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

// benchSet is one rule with when, subject, partition key and a 10-field
// data mapping, validated against a 10-property schema.
func benchSet(b *testing.B) *rules.Set {
	b.Helper()
	props := map[string]any{}
	for _, f := range []string{"order_id", "customer_id", "status", "currency", "channel", "warehouse"} {
		props[f] = map[string]any{"type": "string"}
	}
	props["total"] = map[string]any{"type": "number", "minimum": 0}
	props["lines"] = map[string]any{"type": "integer", "minimum": 1}
	props["priority"] = map[string]any{"type": "boolean"}
	props["created_at"] = map[string]any{"type": "string", "format": "date-time"}
	cat, err := catalog.New([]core.EventType{{
		Type:    "com.acme.order.accepted",
		Version: "1",
		Schema: map[string]any{
			"type":                 "object",
			"required":             []any{"order_id", "customer_id", "total"},
			"additionalProperties": false,
			"properties":           props,
		},
	}}, "")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile("erp", []core.Rule{{
		Name:         "order_accepted",
		When:         `op == "create" && after.status == "NEW"`,
		Type:         "com.acme.order.accepted",
		Subject:      `"orders/" + after.order_id`,
		PartitionKey: `after.order_id`,
		Data: map[string]any{
			"order_id":    "after.order_id",
			"customer_id": "after.customer_id",
			"status":      "after.status",
			"currency":    "after.currency",
			"channel":     "after.channel",
			"warehouse":   "after.warehouse",
			"total":       "after.total",
			"lines":       "after.lines",
			"priority":    "after.priority",
			"created_at":  "after.created_at",
		},
	}}, cat)
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func benchChange() *core.Change {
	return &core.Change{
		Op: core.OpCreate,
		After: map[string]any{
			"order_id":    "A-10042",
			"customer_id": "C-77",
			"status":      "NEW",
			"currency":    "EUR",
			"channel":     "web",
			"warehouse":   "BER-1",
			"total":       json.Number("1299.90"),
			"lines":       int64(3),
			"priority":    false,
			"created_at":  time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
		},
		Source:   core.SourceInfo{System: "postgres", Table: "orders", CommitTime: time.Date(2024, 5, 1, 10, 0, 1, 0, time.UTC)},
		Position: core.Position{Version: 1, Data: []byte("0/16B3748")},
	}
}

// BenchmarkApply10Fields measures one change through one rule: when,
// subject, partition key, a 10-field mapping, catalog validation and JSON
// encoding. Run it with -cpu 1 for the single-core figure.
func BenchmarkApply10Fields(b *testing.B) {
	set := benchSet(b)
	ch := benchChange()
	if res := set.Apply(ch); len(res) != 1 || res[0].Err != nil {
		b.Fatalf("Apply = %+v", res)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		res := set.Apply(ch)
		if res[0].Event == nil {
			b.Fatal(res[0].Err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	// On a shared machine wall time includes waiting for a core; CPU time
	// (of the whole process, garbage collection included) does not.
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
	}
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkApply10FieldsParallel is the same, from GOMAXPROCS goroutines.
func BenchmarkApply10FieldsParallel(b *testing.B) {
	set := benchSet(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ch := benchChange()
		for pb.Next() {
			if res := set.Apply(ch); res[0].Event == nil {
				b.Error(res[0].Err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyWebhookPayload measures the rule of bench/webhook.sh (when,
// subject and a 5-field mapping over paths into a webhook payload, one of
// them len(...)) on its 1 KB order body, validated against its schema.
func BenchmarkApplyWebhookPayload(b *testing.B) {
	cat, err := catalog.New([]core.EventType{{
		Type:    "com.example.order.placed",
		Version: "1",
		Schema: map[string]any{
			"type":     "object",
			"required": []any{"order_id", "customer_id", "total", "currency"},
			"properties": map[string]any{
				"order_id":    map[string]any{"type": "string", "minLength": 1},
				"customer_id": map[string]any{"type": "string"},
				"total":       map[string]any{"type": "number", "minimum": 0},
				"currency":    map[string]any{"type": "string", "pattern": "^[A-Z]{3}$"},
				"lines":       map[string]any{"type": "integer", "minimum": 0},
			},
		},
	}}, "")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile("hooks", []core.Rule{{
		Name:         "order_placed",
		When:         `payload.event == "order.placed"`,
		Type:         "com.example.order.placed",
		Subject:      `payload.order.id`,
		PartitionKey: `payload.order.id`,
		Data: map[string]any{
			"order_id":    "payload.order.id",
			"customer_id": "payload.order.customer",
			"total":       "payload.order.total",
			"currency":    "payload.order.currency",
			"lines":       "len(payload.order.lines)",
		},
	}}, cat)
	if err != nil {
		b.Fatal(err)
	}
	lines := make([]any, 16)
	for i := range lines {
		lines[i] = map[string]any{"sku": "SKU-00001", "qty": json.Number("2"), "price": json.Number("10.99")}
	}
	ch := &core.Change{
		Op: core.OpMessage,
		Payload: map[string]any{"event": "order.placed", "order": map[string]any{
			"id": "o-1001", "customer": "c-42", "total": json.Number("129.5"), "currency": "EUR", "lines": lines}},
		Source:   core.SourceInfo{System: "webhook", Endpoint: "/hooks/bench", CommitTime: time.Date(2024, 5, 1, 10, 0, 1, 0, time.UTC)},
		Position: core.Position{Version: 1, Data: []byte("d-1")},
	}
	if res := set.Apply(ch); len(res) != 1 || res[0].Err != nil {
		b.Fatalf("Apply = %+v", res)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := set.Apply(ch); res[0].Event == nil {
			b.Fatal(res[0].Err)
		}
	}
}

// BenchmarkApplyWholeRow measures the rule of the CDC catch-up benchmarks
// (connectors/mysql's BenchmarkCatchUp): the whole row as the data, its
// id as the partition key, on a row as mysql_cdc decodes it (BIGINT,
// VARCHAR, DECIMAL, DATETIME(6)); "marshal" is the json.Marshal of the
// row, for scale.
func BenchmarkApplyWholeRow(b *testing.B) {
	set, err := rules.Compile("mybench", []core.Rule{{
		Name: "r", Type: "com.example.order.placed", PartitionKey: "string(after.id)", Data: "after",
	}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ch := &core.Change{
		Op:       core.OpCreate,
		After:    map[string]any{"id": int64(1000042), "name": "order 1000042", "total": json.Number("1250052.50"), "created": "2026-12-07T00:05:05.123456"},
		Key:      map[string]any{"id": int64(1000042)},
		Source:   core.SourceInfo{System: "mysql", Schema: "shop", Table: "bench", CommitTime: time.Date(2024, 5, 1, 10, 0, 1, 0, time.UTC), TxID: "0-1-42"},
		Position: core.Position{Version: 1, Data: []byte("0-1-41/17")},
	}
	// CPU time per op (of the whole process, garbage collection included)
	// says more than wall time on a shared machine.
	b.Run("rules", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if res := set.Apply(ch); res[0].Event == nil {
				b.Fatal(res[0].Err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := json.Marshal(ch.After); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
}
