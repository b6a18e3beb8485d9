package rules

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestEventPathAgreesWithVM checks that whenever an expression is read
// directly, without the VM, the VM gives the same value without an error.
func TestEventPathAgreesWithVM(t *testing.T) {
	direct := []string{
		"sink", "event.id", "event.type", "event.source", "event.subject", "event.time", "event.partitionkey",
		"event.dataschema", "event.datacontenttype", "event.data", "event.data.a", "event.data.a.b",
		"event.data.a.b.c", `event.data["a"]`, `event.data["odd key"]`, "event.data?.a", "event.data?.a.b",
		"event.data.a?.b", "event.data?.a?.b", "event.data?.a?.b?.c", "event.data.list", "event.data.text.x",
		"event?.data?.a", "event.data.n",
	}
	notDirect := []string{"event.data.list[0]", "event.data.a.b + 1", `sink + "x"`, "len(event.data)", "event.data.a.b()"}
	events := []*core.Event{
		{ID: "1", Type: "t", Source: "/s", Subject: "sub", Time: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
			PartitionKey: "k", DataSchema: "urn:x", DataContentType: "application/json",
			Data: json.RawMessage(`{"a": {"b": {"c": 1.50}}, "odd key": true, "list": [1], "text": "x", "n": null}`)},
		{ID: "2", Data: json.RawMessage(`{"a": {"b": null}}`)},
		{ID: "3", Data: json.RawMessage(`{"a": null}`)},
		{ID: "4", Data: json.RawMessage(`{}`)},
		{ID: "5"},
		{ID: "6", Data: json.RawMessage(`[1, 2]`)},
		{ID: "7", Data: json.RawMessage(`"text"`)},
		{ID: "8", Data: json.RawMessage(`{"a": [1]}`)},
	}
	for _, code := range notDirect {
		if p, err := compileEvent("x", code); err == nil && p.direct != nil {
			t.Errorf("%s is read directly", code)
		}
	}
	for _, code := range direct {
		p, err := compileEvent("x", code)
		if err != nil {
			t.Fatalf("%s does not compile: %v", code, err)
		}
		if p.direct == nil {
			t.Errorf("%s is not read directly", code)
			continue
		}
		for _, ev := range events {
			e := NewEventEnv(ev, "sink1")
			if err := e.loadData(); err != nil {
				t.Fatal(err)
			}
			want, vmErr := e.vm.Run(p.prog, &e.vars)
			got, ok := p.direct.read(e)
			if !ok {
				continue
			}
			if vmErr != nil {
				t.Errorf("%s on event %s = %#v, the VM fails: %v", code, ev.ID, got, vmErr)
			} else if !reflect.DeepEqual(got, want) {
				t.Errorf("%s on event %s = %#v, the VM says %#v", code, ev.ID, got, want)
			}
		}
	}
}
