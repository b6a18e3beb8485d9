package runtime_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

// TestRulesMapLargeBatchesInOrder runs batches large enough to be mapped on
// several goroutines through the rules engine and checks that events, and
// dead-letter records, keep the source's order and that every change is
// committed.
func TestRulesMapLargeBatchesInOrder(t *testing.T) {
	cat, err := catalog.New([]core.EventType{{
		Type: "test.created", Version: "1",
		Schema: map[string]any{"type": "object", "required": []any{"id"}, "properties": map[string]any{"id": map[string]any{"type": "integer", "maximum": 2900}}},
	}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile("orders", []core.Rule{{
		Name: "created", Type: "test.created", Subject: "string(after.id)",
		Data: map[string]any{"id": "after.id"},
	}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	st := memstream.New()
	const total = 3000
	src := &seqSource{total: total, batch: 1000}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: runtime.Rules(set)})
	waitFor(t, "last ack", func() bool { return src.lastAck() == total })
	stop()
	msgs := st.Messages("test.created")
	if len(msgs) != 2900 {
		t.Fatalf("got %d events, want 2900", len(msgs))
	}
	for i, m := range msgs {
		var d map[string]int
		if err := json.Unmarshal(m.Payload, &d); err != nil || d["id"] != i+1 {
			t.Fatalf("event %d: payload %s, want id %d", i, m.Payload, i+1)
		}
		want := core.EventID("orders", core.Position{Version: 1, Data: []byte(m.Metadata.Get(core.HeaderSubject))}, "created")
		if m.UUID != want {
			t.Fatalf("event %d: id %s, want %s", i, m.UUID, want)
		}
	}
	// Ids above the schema's maximum fail validation, in order too.
	dead := st.Messages("tributary.deadletter")
	if len(dead) != 100 {
		t.Fatalf("got %d dead-letter records, want 100", len(dead))
	}
	for i, m := range dead {
		var rec struct {
			Change struct {
				After map[string]int `json:"after"`
			} `json:"change"`
		}
		if err := json.Unmarshal(m.Payload, &rec); err != nil || rec.Change.After["id"] != 2901+i {
			t.Fatalf("dead-letter record %d: %s", i, m.Payload)
		}
	}
	cp, ok, _ := st.Checkpoints().Load(context.Background(), "orders")
	if !ok || string(cp.Position.Data) != "3000" {
		t.Fatalf("checkpoint = %+v, want position 3000", cp)
	}
}
