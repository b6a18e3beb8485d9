package embedded_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// BenchmarkPublishSmallTx publishes 1 KB events in transactions of 20
// events, each followed by a checkpoint as the runtime saves it: the shape
// of the webhook sidecar's transactions (its inbox hands the runtime about
// 20 deliveries at a time), where what every transaction costs, beyond its
// rows, decides the CPU per event. One op is one event.
func BenchmarkPublishSmallTx(b *testing.B) {
	const perTx = 20
	msgs := benchMessages(4096)
	s := openStream(b, b.TempDir(), nil)
	pub := s.Publisher()
	cps := s.Checkpoints()
	ctx := context.Background()
	b.SetBytes(1024)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	// The checkpoint of one transaction's events is saved while the next
	// publish is on its way, so that the two share a transaction, as the
	// runtime's do.
	saved := make(chan error, 1)
	saved <- nil
	for i := 0; i < b.N; i += perTx {
		n := min(perTx, b.N-i)
		j := i % (len(msgs) - perTx)
		if err := pub.Publish("bench", msgs[j:j+n]...); err != nil {
			b.Fatalf("publish: %v", err)
		}
		if err := <-saved; err != nil {
			b.Fatalf("save checkpoint: %v", err)
		}
		cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: "bench", Position: core.Position{Version: 1, Data: fmt.Appendf(nil, "%d", i+n)}, Time: time.Now().UTC()}
		go func() { saved <- cps.Save(ctx, cp) }()
	}
	if err := <-saved; err != nil {
		b.Fatalf("save checkpoint: %v", err)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu
	b.StopTimer()
	report(b, elapsed, cpu)
}
