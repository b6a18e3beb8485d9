package webhook_test

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// TestDrainHandsOverAcceptedDeliveries answers deliveries 2xx, then drains
// the source without reading: Drain returns them in order and stops
// intake; until they are acknowledged they stay in the inbox (a restart
// from the old checkpoint reads them again), and from the checkpoint of the
// last one nothing is left.
func TestDrainHandsOverAcceptedDeliveries(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	want := []string{"d-1", "d-2", "d-3"}
	for _, id := range want {
		if a := h.post(`{"id":"`+id+`"}`, map[string]string{"X-Delivery": id}); a.status != http.StatusOK {
			t.Fatalf("delivery %s answered %d, want 200", id, a.status)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	chs, err := h.src.Drain(ctx)
	if err != nil {
		t.Fatalf("Drain() error = %v", err)
	}
	if got := ids(chs); !reflect.DeepEqual(got, want) {
		t.Fatalf("Drain() = %v, want %v", got, want)
	}
	if a := h.post(`{"id":"late"}`, map[string]string{"X-Delivery": "late"}); a.status/100 == 2 {
		t.Fatalf("a delivery after Drain answered %d, want it refused", a.status)
	}
	if err := h.src.Ack(ctx, chs[len(chs)-1].Position); err != nil {
		t.Fatalf("Ack() after Drain: %v", err)
	}
	h.restart(core.Position{})
	if got := ids(h.readN(len(want))); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a restart without a checkpoint Read() = %v, want %v again", got, want)
	}
	h.restart(chs[len(chs)-1].Position)
	h.readNone()
}
