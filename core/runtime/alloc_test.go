package runtime_test

import (
	"context"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// TestSessionAllocatesLittlePerChange: a change read alone (a webhook
// delivery under a light load) costs the session a handful of
// allocations: its pending state, its mapping's outputs, one group and
// the stream's callback; no map per batch or group, no slices grown one
// message at a time, no metric looked up by its labels.
func TestSessionAllocatesLittlePerChange(t *testing.T) {
	const n = 20000
	// The source allocates two objects per change (the batch and the
	// position); the session five.
	const budget = 8.0
	ev := &core.Event{
		ID: "evt-1", Source: "tributary/test", SpecVersion: "1.0", Type: "com.acme.order.accepted",
		Subject: "A-1", Time: time.Unix(1700000000, 0).UTC(), DataContentType: "application/json",
		Data: []byte(`{"order_id":"A-1"}`),
	}
	outs := []runtime.Output{{Rule: "accepted", Event: ev}}
	src := &sessionSource{n: n, size: 1, changes: []core.Change{{Op: core.OpCreate, Source: core.SourceInfo{System: "test"}}}}
	rt, err := runtime.New(runtime.Options{
		Stream: eventDiscardStream{memstream.New()},
		Connectors: []runtime.Connector{{Name: "orders", Source: src,
			Mapper: runtime.MapperFunc(func(*core.Change) []runtime.Output { return outs })}},
		StateDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Let the runtime start (opening, metrics, its goroutines) before
	// counting: the source reads only once its first change is due.
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	go func() { done <- rt.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for src.acked.Load() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d changes acknowledged after 30s", src.acked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	metrics.Read(s)
	before, from := s[0].Value.Uint64(), src.acked.Load()
	for src.acked.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d changes acknowledged after 30s", src.acked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	metrics.Read(s)
	per := float64(s[0].Value.Uint64()-before) / float64(n-from)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%.1f allocations per change read alone", per)
	if per > budget {
		t.Errorf("%.1f allocations per change read alone, over the budget of %.0f", per, budget)
	}
}
