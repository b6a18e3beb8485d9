package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// TestGroupCommitsSpaced acks thousands of messages of a consumer group
// as fast as they come, through a sink's window, and checks that the
// group's offset was queued for the writer no more than once per
// commitInterval (and once more at the end), not once per ack, and that
// the last acked offset is the one committed when the subscription ends.
func TestGroupCommitsSpaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := New()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, core.Env{Name: "stream", StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	const n = 5000
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprint(i), []byte(`{}`))
	}
	if err := s.Publisher().Publish("t", msgs...); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning, Window: 512})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var last string
	for i := range n {
		select {
		case m := <-ch:
			m.Ack()
			last = m.Metadata.Get(core.MetadataPosition)
		case <-ctx.Done():
			t.Fatalf("%d of %d messages delivered", i, n)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	st := s.store()
	g := st.group("g", "t")
	g.mu.Lock()
	commits := g.commits
	g.mu.Unlock()
	if most := int(elapsed/commitInterval) + 2; commits > most {
		t.Errorf("%d acks in %s queued %d commits, want at most %d (one per %s and the last)", n, elapsed, commits, most, commitInterval)
	}
	if commits == 0 {
		t.Error("no commit queued")
	}
	var want int64
	if _, err := fmt.Sscanf(last, "t/0/%d", &want); err != nil {
		t.Fatalf("position %q: %v", last, err)
	}
	// The last commit is written before the group's lease is released,
	// which Close waits for.
	for {
		off, ok, err := st.committed(ctx, "g", "t")
		if err != nil {
			t.Fatal(err)
		}
		if ok && off == want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("committed offset %d (%v), want %d", off, ok, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
