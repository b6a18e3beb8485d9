package embedded

import (
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestEventMetadataMatchesMessage checks that an event's attributes encode
// to exactly the metadata of its ToMessage form, whichever optional
// attributes are set.
func TestEventMetadataMatchesMessage(t *testing.T) {
	// A new Event field may need a case here and in core.Event.EachAttribute.
	if n := reflect.TypeFor[core.Event]().NumField(); n != 12 {
		t.Fatalf("core.Event has %d fields, this test and core.Event.EachAttribute know 12", n)
	}
	full := core.Event{
		ID: "0b6f6c8e-8f4e-5d7e-9f2a-1c3b5d7e9f2a", Source: "/erp/orders", SpecVersion: core.SpecVersion,
		Type: "com.example.order.changed", Subject: "order-7", Time: time.Date(2024, 2, 3, 4, 5, 6, 789, time.FixedZone("x", 3600)),
		DataContentType: "application/json", DataSchema: "https://schemas.example.com/order/1", Data: []byte(`{"id":7}`),
		PartitionKey: "7", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
	}
	cases := map[string]core.Event{"full": full, "minimal": {ID: "x", Source: "/s", SpecVersion: "1.0", Type: "t"}}
	for name, edit := range map[string]func(*core.Event){
		"no subject":    func(e *core.Event) { e.Subject = "" },
		"no time":       func(e *core.Event) { e.Time = time.Time{} },
		"no schema":     func(e *core.Event) { e.DataSchema = "" },
		"no key":        func(e *core.Event) { e.PartitionKey = "" },
		"no trace":      func(e *core.Event) { e.TraceParent, e.TraceState = "", "" },
		"no tracestate": func(e *core.Event) { e.TraceState = "" },
		"no type":       func(e *core.Event) { e.DataContentType = "" },
		"whole seconds": func(e *core.Event) { e.Time = time.Unix(1700000000, 0) },
		"long values": func(e *core.Event) {
			e.Subject = string(make([]byte, 300))
			e.Time = time.Date(12345, 1, 1, 0, 0, 0, 1, time.UTC)
		},
	} {
		e := full
		edit(&e)
		cases[name] = e
	}
	for name, e := range cases {
		enc := appendEventMetadata([]byte("prefix"), &e)[len("prefix"):]
		if n, ok := metadataLen(enc); !ok || n != len(enc) {
			t.Fatalf("%s: metadataLen = %d, %v; want %d", name, n, ok, len(enc))
		}
		if max := eventMetadataMax(&e); len(enc) > max {
			t.Errorf("%s: %d bytes written, bound says %d", name, len(enc), max)
		}
		want := e.ToMessage().Metadata
		if got := decodeBinaryMetadata(enc); !maps.Equal(got, map[string]string(want)) {
			t.Errorf("%s: event metadata %q, message metadata %q", name, got, want)
		}
	}
}
