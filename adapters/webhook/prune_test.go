package webhook_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// TestPayloadPathsPruneChanges checks that a source told the rules'
// payload paths hands changes holding only those, with the whole body as
// Raw, while its hooks see whole payloads; and that a source told nothing
// (after a restart) builds whole payloads of the same stored delivery.
func TestPayloadPathsPruneChanges(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: func(r *webhook.Request) string {
		p, err := r.Payload()
		if err != nil {
			return ""
		}
		id, _ := p.(map[string]any)["delivery"].(string)
		return id
	}})
	h.src.SetPayloadPaths([]core.PayloadPath{{Fields: []string{"order", "id"}}, {Fields: []string{"order", "lines"}, LenOnly: true}}, false)
	body := `{"delivery":"d-1","order":{"id":"o-1","note":"n","lines":[{"sku":"a"},{"sku":"b"}]},"extra":{"big":[1,2,3]}}`
	if a := h.post(body, nil); a.status != http.StatusAccepted && a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	ch := h.readN(1)[0]
	if got := string(ch.Position.Data); got != "d-1" {
		t.Errorf("delivery id %q, want d-1 (read from the whole payload by the hook)", got)
	}
	want := map[string]any{"order": map[string]any{"id": "o-1", "lines": []any{nil, nil}}}
	if !ch.PayloadPruned || !reflect.DeepEqual(ch.Payload, want) || string(ch.Raw) != body {
		t.Errorf("change payload %#v (pruned %v), raw %s; want %#v pruned and the whole body", ch.Payload, ch.PayloadPruned, ch.Raw, want)
	}

	h.restart(core.Position{})
	ch = h.readN(1)[0]
	var whole any
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&whole); err != nil {
		t.Fatal(err)
	}
	if ch.PayloadPruned || !reflect.DeepEqual(ch.Payload, whole) {
		t.Errorf("after a restart, payload %#v (pruned %v), want the whole %#v", ch.Payload, ch.PayloadPruned, whole)
	}
}

// TestHooksReadPayloadParseOnce checks that a source whose hooks read the
// payload builds it whole once, for the hooks and the rules alike, rather
// than pruned for the rules and whole again for the hooks.
func TestHooksReadPayloadParseOnce(t *testing.T) {
	hooks := 0
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", HooksReadPayload: true, DeliveryID: func(r *webhook.Request) string {
		hooks++
		p, err := r.Payload()
		if err != nil {
			return ""
		}
		id, _ := p.(map[string]any)["delivery"].(string)
		return id
	}})
	h.src.SetPayloadPaths([]core.PayloadPath{{Fields: []string{"order", "id"}}}, false)
	body := `{"delivery":"d-1","order":{"id":"o-1","note":"n"},"extra":[1,2]}`
	if a := h.post(body, nil); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.raw)
	}
	ch := h.readN(1)[0]
	var whole any
	d := json.NewDecoder(strings.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&whole); err != nil {
		t.Fatal(err)
	}
	if hooks != 1 || string(ch.Position.Data) != "d-1" {
		t.Errorf("hook called %d times, id %q; want once, d-1", hooks, ch.Position.Data)
	}
	if ch.PayloadPruned || !reflect.DeepEqual(ch.Payload, whole) {
		t.Errorf("payload %#v (pruned %v), want the whole payload the hook built", ch.Payload, ch.PayloadPruned)
	}
}
