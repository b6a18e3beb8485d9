package rules

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
)

// TestSinkFuncsDecodeOnce checks that a sink's filter and map, called for
// one event, share one decoding of its data, and that the next event gets
// its own.
func TestSinkFuncsDecodeOnce(t *testing.T) {
	when, err := CompileEventCondition("sinks[0].when", "event.data.n > 0")
	if err != nil {
		t.Fatal(err)
	}
	data, err := CompileEventData("sinks[0].map", "event.data")
	if err != nil {
		t.Fatal(err)
	}
	sh := &sharedEnv{sink: "s"}
	filter, mapper := sh.funcs(when, data)
	for i, raw := range []string{`{"n": 1}`, `{"n": 2}`} {
		ev := &core.Event{ID: "e", Data: json.RawMessage(raw)}
		if held, err := filter(ev); err != nil || !held {
			t.Fatalf("event %d: filter = %v, %v", i, held, err)
		}
		decoded := sh.env.vars.Event.Data
		v, err := mapper(ev)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.ValueOf(v).UnsafePointer() != reflect.ValueOf(decoded).UnsafePointer() {
			t.Errorf("event %d: the map decoded the data again", i)
		}
		if got, _ := json.Marshal(v); string(got) != `{"n":`+string(rune('1'+i))+`}` {
			t.Errorf("event %d: map = %s", i, got)
		}
	}
}
