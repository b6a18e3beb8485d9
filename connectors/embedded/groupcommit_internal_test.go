package embedded

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// TestCheckpointJoinsNextPublish: a connector saves its checkpoint once
// its events are durable, and publishes its next events meanwhile. While
// it publishes, the checkpoint waits for the next publish and both are
// written in one transaction (one sync), rather than one each.
func TestCheckpointJoinsNextPublish(t *testing.T) {
	const rounds = 40
	s := New()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Open(ctx, core.Env{Name: "stream", StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	pub := s.Publisher().(*Publisher)
	publish := func(i int) chan error {
		done := make(chan error, 1)
		msg := message.NewMessage("m"+string(rune('a'+i%26)), []byte(`{"n":1}`))
		if err := pub.PublishAsync(ctx, "orders", []*message.Message{msg}, func(err error) { done <- err }); err != nil {
			t.Fatalf("publish: %v", err)
		}
		return done
	}
	if err := <-publish(0); err != nil {
		t.Fatalf("publish: %v", err)
	}
	before := s.store().transactions.Load()
	st := s.store()
	// A window long enough that the scheduler of a loaded machine does
	// not decide the outcome; the pause before each publish is far
	// shorter, and long enough for the writer to begin a transaction.
	st.window.Store(int64(200 * time.Millisecond))
	for i := range rounds {
		// The checkpoint is queued as Checkpoints.Save queues it, and
		// the next publish comes after the writer has taken it.
		saved := make(chan error, 1)
		o := &op{checkpoint: &checkpointRow{connector: "orders", data: `{"position":` + string(rune('0'+i%10)) + `}`}, done: func(err error) { saved <- err }}
		if err := st.enqueue(ctx, o); err != nil {
			t.Fatalf("queue checkpoint: %v", err)
		}
		for deadline := time.Now().Add(time.Second); len(st.queue) > 0 && time.Now().Before(deadline); {
			runtime.Gosched()
		}
		// A moment later: the writer has begun the checkpoint's own
		// transaction by then, unless it waits for a publish.
		time.Sleep(5 * time.Millisecond)
		published := publish(i + 1)
		if err := <-saved; err != nil {
			t.Fatalf("save checkpoint: %v", err)
		}
		if err := <-published; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	txs := s.store().transactions.Load() - before
	t.Logf("%d checkpoints and %d publishes in %d transactions", rounds, rounds, txs)
	// Alone, each checkpoint and each publish take a transaction: 80.
	if limit := rounds + rounds/4; txs > int64(limit) {
		t.Errorf("%d checkpoints and %d publishes took %d transactions, want at most %d: checkpoints do not share the next publish's", rounds, rounds, txs, limit)
	}
}
