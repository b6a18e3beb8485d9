package webhook_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// TestDedupBoundedMemoryAcrossRestart posts more deliveries than the
// source keeps ids of in memory (DedupMemoryIDs 8), acknowledges them and
// restarts: every id is still a duplicate, the older ones answered from the
// dedup runs on disk.
func TestDedupBoundedMemoryAcrossRestart(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, DedupMemoryIDs: 8})
	const n = 60
	for i := range n {
		id := "d-" + strconv.Itoa(i)
		if a := h.post(`{"n":`+strconv.Itoa(i)+`}`, map[string]string{"X-Delivery": id}); a.body["status"] != "accepted" {
			t.Fatalf("first post of %s = %s, want accepted", id, a.raw)
		}
		// Let the writer's upkeep install seals between posts.
		if i%10 == 9 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	chs := h.readN(n)
	if err := h.src.Ack(context.Background(), chs[n-1].Position); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	h.restart(core.Position{Version: webhook.PositionVersion, Data: chs[n-1].Position.Data})
	runs, err := filepath.Glob(filepath.Join(h.dir, "webhook-inbox", "dedup-*.run"))
	if err != nil || len(runs) == 0 {
		t.Fatalf("dedup runs on disk after %d deliveries with 8 ids in memory = %v, %v; want some", n, runs, err)
	}
	for i := range n {
		id := "d-" + strconv.Itoa(i)
		if a := h.post(`{}`, map[string]string{"X-Delivery": id}); a.body["status"] != "duplicate" {
			t.Errorf("%s after a restart = %s, want duplicate", id, a.raw)
		}
	}
	if a := h.post(`{}`, map[string]string{"X-Delivery": "fresh"}); a.body["status"] != "accepted" {
		t.Errorf("a fresh id after a restart = %s, want accepted", a.raw)
	}
	h.readN(1)
}
