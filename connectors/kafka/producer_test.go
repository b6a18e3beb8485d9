package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
)

// TestRecordsReadBack publishes events with every codec and batching
// setting and reads them back: each event once, with its headers, key and
// data, and the events of a key in the order they were published.
func TestRecordsReadBack(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
	}{
		{"none", nil},
		{"gzip", map[string]any{"compression": "gzip"}},
		{"snappy", map[string]any{"compression": "snappy"}},
		{"lz4", map[string]any{"compression": "lz4"}},
		{"zstd", map[string]any{"compression": "zstd"}},
		{"small batches", map[string]any{"linger": "2ms", "batch_max_bytes": 4096, "batch_max_messages": 7}},
	}
	const calls, perCall, keys = 4, 150, 7
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openStream(t, tc.values)
			topic := newTopic("readback")
			pub := s.Publisher().(*kafka.Publisher)
			sent := map[string]*core.Event{}
			errs := make(chan error, calls)
			for c := range calls {
				msgs := make([]*message.Message, perCall)
				for i := range msgs {
					n := c*perCall + i
					key := fmt.Sprintf("key-%d", n%keys)
					ev := testEvent(fmt.Sprintf("ev-%05d", n), key)
					ev.Data = []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, n, strings.Repeat("x", n%300)))
					if n%50 == 0 {
						ev.PartitionKey = "" // no key: any partition
					}
					sent[ev.ID] = ev
					msgs[i] = ev.ToMessage()
				}
				if err := pub.PublishAsync(context.Background(), topic, msgs, func(err error) { errs <- err }); err != nil {
					t.Fatalf("publish call %d: %v", c, err)
				}
			}
			for range calls {
				if err := <-errs; err != nil {
					t.Fatalf("publish: %v", err)
				}
			}

			sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ch, err := sub.Subscribe(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			last := map[string]int{}
			for _, m := range receive(t, ch, calls*perCall) {
				want, ok := sent[m.UUID]
				if !ok {
					t.Fatalf("read %q: not published, or read twice", m.UUID)
				}
				delete(sent, m.UUID)
				got, err := core.EventFromMessage(m)
				if err != nil {
					t.Fatal(err)
				}
				if got.Type != want.Type || got.Source != want.Source || got.Subject != want.Subject ||
					got.PartitionKey != want.PartitionKey || !got.Time.Equal(want.Time) ||
					got.DataContentType != want.DataContentType || string(got.Data) != string(want.Data) {
					t.Fatalf("read back %+v, want %+v", got, want)
				}
				if rec, ok := kafka.RecordFromContext(m.Context()); !ok || string(rec.Key) != want.PartitionKey {
					t.Fatalf("record of %s has key %q, want %q", m.UUID, rec.Key, want.PartitionKey)
				}
				if want.PartitionKey == "" {
					continue
				}
				n, _ := strconv.Atoi(strings.TrimPrefix(m.UUID, "ev-"))
				if prev, ok := last[want.PartitionKey]; ok && n < prev {
					t.Fatalf("%s read after ev-%05d: key %s out of order", m.UUID, prev, want.PartitionKey)
				}
				last[want.PartitionKey] = n
			}
		})
	}
}

// TestRefusedRecordFailsAlone publishes a record larger than the broker
// accepts: its call fails with the broker's reason, and records published
// to the same partition before and after it are stored.
func TestRefusedRecordFailsAlone(t *testing.T) {
	s := openStream(t, map[string]any{"topic_partitions": 1, "batch_max_bytes": 4 << 20})
	topic := newTopic("refused")
	pub := s.Publisher()
	small := func(id string) *message.Message { return testEvent(id, "k").ToMessage() }
	if err := pub.Publish(topic, small("before")); err != nil {
		t.Fatalf("publish before: %v", err)
	}
	big := testEvent("big", "k")
	big.Data = make([]byte, 3<<20)
	err := pub.Publish(topic, big.ToMessage())
	if !errors.Is(err, sarama.ErrMessageSizeTooLarge) && !errors.Is(err, sarama.ErrInvalidMessageSize) {
		t.Fatalf("publish of a 3 MB record: %v, want the broker's message too large", err)
	}
	if !errors.Is(err, core.ErrPermanent) {
		t.Fatalf("publish of a 3 MB record: %v, want an error wrapping core.ErrPermanent", err)
	}
	if err := pub.Publish(topic, small("after-1"), small("after-2")); err != nil {
		t.Fatalf("publish after: %v", err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range receive(t, ch, 3) {
		ids = append(ids, m.UUID)
	}
	if strings.Join(ids, ",") != "before,after-1,after-2" {
		t.Fatalf("read %v, want before, after-1, after-2", ids)
	}
}
