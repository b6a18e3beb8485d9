package catalog_test

import (
	"encoding/json"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// BenchmarkValidate10Fields validates a 10-field object against a schema
// declaring each field.
func BenchmarkValidate10Fields(b *testing.B) {
	props := map[string]any{}
	for _, f := range []string{"order_id", "customer_id", "status", "currency", "channel", "warehouse"} {
		props[f] = map[string]any{"type": "string"}
	}
	props["total"] = map[string]any{"type": "number", "minimum": 0}
	props["lines"] = map[string]any{"type": "integer", "minimum": 1}
	props["priority"] = map[string]any{"type": "boolean"}
	props["created_at"] = map[string]any{"type": "string", "format": "date-time"}
	c, err := catalog.New([]core.EventType{{
		Type: "com.acme.order.accepted", Version: "1",
		Schema: map[string]any{
			"type": "object", "required": []any{"order_id", "customer_id", "total"},
			"additionalProperties": false, "properties": props,
		},
	}}, "")
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{
		"order_id": "A-10042", "customer_id": "C-77", "status": "NEW", "currency": "EUR",
		"channel": "web", "warehouse": "BER-1", "total": json.Number("1299.90"), "lines": int64(3),
		"priority": false, "created_at": "2024-05-01T10:00:00Z",
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Validate("com.acme.order.accepted", data); err != nil {
			b.Fatal(err)
		}
	}
}
