package embedded_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// TestCommittedOffsets publishes to two topics in turn (their offsets
// interleave), acks three of topic a's five messages in a group and
// checks the group's offsets: on a, the offset after the third message,
// the end after a's last and a lag of two (b's messages not counted); b,
// which the group never read, left out.
func TestCommittedOffsets(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	var g runtime.GroupOffsets = s
	pub := s.Publisher()
	for i := range 5 {
		for _, topic := range []string{"a", "b"} {
			if err := pub.Publish(topic, message.NewMessage(fmt.Sprintf("%s-%d", topic, i), []byte("{}"))); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if offs, err := g.CommittedOffsets(ctx, "g", []string{"a", "b"}); err != nil || len(offs) != 0 {
		t.Fatalf("offsets of a group that read nothing: %+v, %v; want none", offs, err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var third string
	for i := range 3 {
		select {
		case m := <-msgs:
			m.Ack()
			if i == 2 {
				third = m.Metadata.Get(core.MetadataPosition)
			}
		case <-ctx.Done():
			t.Fatal("messages not delivered")
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	var at int64
	if _, err := fmt.Sscanf(third, "a/0/%d", &at); err != nil {
		t.Fatalf("position %q: %v", third, err)
	}
	// a's messages have the odd offsets 1 to 9; the third is 5.
	want := []runtime.PartitionOffset{{Topic: "a", Partition: 0, Offset: at + 1, End: 10, Lag: 2}}
	var got []runtime.PartitionOffset
	for {
		got, err = g.CommittedOffsets(ctx, "g", []string{"a", "b"})
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, want) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("offsets %+v, want %+v", got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if at != 5 {
		t.Errorf("third message of a at offset %d, want 5", at)
	}
}

// TestCommittedOffsetsClosed: a closed stream answers with ErrClosed.
func TestCommittedOffsetsClosed(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommittedOffsets(ctx, "g", []string{"a"}); err == nil {
		t.Error("a closed stream answered offsets")
	}
}
