package embedded_test

import (
	"context"
	"runtime/metrics"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// allocatedBytes returns the bytes the Go heap has allocated so far.
func allocatedBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestPublishOneAllocatesLittle: a publish of one event (the webhook's
// usual group under a steady load) allocates about what its row and
// metadata take, not a buffer sized for hundreds of them.
func TestPublishOneAllocatesLittle(t *testing.T) {
	const n = 2000
	// The metadata of a CloudEvent is about 300 bytes; the op, its row
	// and the callback add a few hundred more.
	const budget = 1536
	s := openStream(t, t.TempDir(), nil)
	pub := s.Publisher().(core.AsyncPublisher)
	evPub := s.Publisher().(core.EventPublisher)
	msgs := benchMessages(64)
	events := make([]*core.Event, len(msgs))
	for i, m := range msgs {
		e, err := core.EventFromMessage(m)
		if err != nil {
			t.Fatalf("event from message: %v", err)
		}
		events[i] = e
	}
	tests := []struct {
		name    string
		publish func(i int, done func(error)) error
	}{
		{name: "PublishAsync", publish: func(i int, done func(error)) error {
			return pub.PublishAsync(context.Background(), "alloc", []*message.Message{msgs[i%len(msgs)]}, done)
		}},
		{name: "PublishEvents", publish: func(i int, done func(error)) error {
			return evPub.PublishEvents(context.Background(), "alloc", events[i%len(events):i%len(events)+1], done)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wg sync.WaitGroup
			var errMu sync.Mutex
			var firstErr error
			done := func(err error) {
				if err != nil {
					errMu.Lock()
					firstErr = err
					errMu.Unlock()
				}
				wg.Done()
			}
			// A warm-up, so that the writer's buffers are grown.
			wg.Add(n)
			for i := range n {
				if err := tt.publish(i, done); err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
			wg.Wait()
			before := allocatedBytes()
			wg.Add(n)
			for i := range n {
				if err := tt.publish(i, done); err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
			wg.Wait()
			per := (allocatedBytes() - before) / n
			if firstErr != nil {
				t.Fatalf("publish: %v", firstErr)
			}
			t.Logf("%d bytes allocated per publish of one 1 KB event", per)
			if per > budget {
				t.Errorf("a publish of one event allocated %d bytes, over the %d byte budget", per, budget)
			}
		})
	}
}
