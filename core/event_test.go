package core_test

import (
	"crypto/sha1"
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tributary/tributary/core"
)

func TestEventIDIsNameBasedUUID(t *testing.T) {
	pos := core.Position{Version: 1, Data: []byte("0/16B3748")}
	got := core.EventID("orders", pos, "order_placed")
	ns := uuid.MustParse("6f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a91")
	want := uuid.NewHash(sha1.New(), ns, []byte("orders\x001\x000/16B3748\x00order_placed"), 5).String()
	if got != want {
		t.Fatalf("EventID = %s, want %s", got, want)
	}
	if again := core.EventID("orders", pos, "order_placed"); again != got {
		t.Fatalf("EventID not deterministic: %s then %s", got, again)
	}
	for name, other := range map[string]string{
		"connector": core.EventID("billing", pos, "order_placed"),
		"rule":      core.EventID("orders", pos, "order_shipped"),
		"position":  core.EventID("orders", core.Position{Version: 1, Data: []byte("0/16B3749")}, "order_placed"),
		"version":   core.EventID("orders", core.Position{Version: 2, Data: pos.Data}, "order_placed"),
	} {
		if other == got {
			t.Errorf("a different %s gives the same id", name)
		}
	}
}

func TestEventMessageRoundTrip(t *testing.T) {
	ev := core.Event{
		ID: "id-1", Source: "/tributary/orders", SpecVersion: core.SpecVersion, Type: "com.acme.order.placed",
		Subject: "A-1", DataContentType: "application/json", DataSchema: "urn:x", Data: []byte(`{"a":1}`),
		PartitionKey: "A-1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
	}
	m := ev.ToMessage()
	if m.Metadata.Get("ce_type") != ev.Type || m.Metadata.Get(core.MetadataKey) != "A-1" || m.UUID != "id-1" {
		t.Fatalf("metadata = %v", m.Metadata)
	}
	back, err := core.EventFromMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if back.Type != ev.Type || back.Subject != ev.Subject || back.PartitionKey != ev.PartitionKey || back.TraceParent != ev.TraceParent || back.TraceState != ev.TraceState || string(back.Data) != string(ev.Data) {
		t.Fatalf("round trip = %+v", back)
	}
	m.Metadata.Set("ce_type", "")
	if _, err := core.EventFromMessage(m); err == nil {
		t.Fatal("a message without ce_type was accepted as an event")
	}
}

func TestTrackerWatermark(t *testing.T) {
	tr := core.NewTracker()
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, tr.Add(core.Position{Version: 1, Data: []byte{byte('a' + i)}}))
	}
	if _, ok := tr.Done(seqs[2]); ok {
		t.Fatal("watermark advanced past pending changes")
	}
	if _, ok := tr.Done(seqs[1]); ok {
		t.Fatal("watermark advanced past pending change 0")
	}
	pos, ok := tr.Done(seqs[0])
	if !ok || string(pos.Data) != "c" {
		t.Fatalf("watermark = %s, %v; want c", pos, ok)
	}
	if tr.Pending() != 2 {
		t.Fatalf("pending = %d, want 2", tr.Pending())
	}
	tr.Done(seqs[4])
	pos, ok = tr.Done(seqs[3])
	if !ok || string(pos.Data) != "e" || tr.Pending() != 0 {
		t.Fatalf("watermark = %s, %v, pending %d", pos, ok, tr.Pending())
	}
}

// TestEachAttributeMatchesToMessage checks that EachAttribute yields
// AttributeCount entries, which are the metadata of ToMessage.
func TestEachAttributeMatchesToMessage(t *testing.T) {
	full := core.Event{ID: "i", Source: "/s", SpecVersion: core.SpecVersion, Type: "t", Subject: "sub",
		Time: time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)), DataContentType: "application/json",
		DataSchema: "urn:s", PartitionKey: "k", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "congo=t61rcWkgMzE"}
	for i, e := range []core.Event{full, {ID: "i", Source: "/s", SpecVersion: core.SpecVersion, Type: "t"}} {
		got := map[string]string{}
		n := 0
		e.EachAttribute(func(k, v string, at time.Time) {
			n++
			if k == core.HeaderTime {
				v = at.UTC().Format(time.RFC3339Nano)
			}
			got[k] = v
		})
		if n != e.AttributeCount() {
			t.Errorf("event %d: %d entries yielded, AttributeCount says %d", i, n, e.AttributeCount())
		}
		if want := e.ToMessage().Metadata; !maps.Equal(got, map[string]string(want)) {
			t.Errorf("event %d: attributes %q, message metadata %q", i, got, want)
		}
	}
}
