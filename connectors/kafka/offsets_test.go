package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// TestCommittedOffsets reads every message of a two-partition topic in a
// consumer group, then publishes three more: the group's offsets on the
// real broker cover what it read, the ends what is stored, and the lag
// adds up to the three unread. A topic the group never read and one that
// does not exist are left out.
func TestCommittedOffsets(t *testing.T) {
	s := openStream(t, map[string]any{"topic_partitions": 2})
	var g runtime.GroupOffsets = s
	topic, other := newTopic("offsets"), newTopic("offsets-other")
	publish := func(topic string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			m := message.NewMessage(fmt.Sprintf("m-%d", i), []byte(`{}`))
			m.Metadata.Set(core.MetadataKey, fmt.Sprintf("k-%d", i))
			if err := s.Publisher().Publish(topic, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(topic, 0, 6)
	publish(other, 0, 1)
	group := topic + "-group"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := s.Subscriber(core.SubscribeOptions{Group: group, From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, ch, 6)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	publish(topic, 6, 9)

	topics := []string{topic, other, newTopic("offsets-none")}
	var offs []runtime.PartitionOffset
	for {
		offs, err = g.CommittedOffsets(ctx, group, topics)
		if err != nil {
			t.Fatal(err)
		}
		var read, end, lag int64
		for _, o := range offs {
			read, end, lag = read+o.Offset, end+o.End, lag+o.Lag
		}
		if read == 6 && end == 9 && lag == 3 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("offsets %+v: %d read, %d stored, lag %d; want 6, 9 and 3", offs, read, end, lag)
		case <-time.After(100 * time.Millisecond):
		}
	}
	seen := map[int32]bool{}
	for _, o := range offs {
		if o.Topic != topic || seen[o.Partition] || o.Lag != o.End-o.Offset {
			t.Errorf("offset %+v among %+v: want one per partition of %s, lag = end - offset", o, offs, topic)
		}
		seen[o.Partition] = true
	}
	if len(offs) != 2 {
		t.Errorf("offsets %+v: want both partitions of %s", offs, topic)
	}
}
