package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// createTopic creates a topic of one partition with the given settings.
func createTopic(t *testing.T, topic string, configs map[string]string) {
	t.Helper()
	servicetest.KafkaTopic(t, topic, configs)
}

// TestRefusedRecordsArePermanent publishes, in calls that share a batch,
// records the broker (or the producer) refuses for what they are beside
// records it takes: the call of a refused record fails with an error that
// wraps core.ErrPermanent and names the topic, the partition and the
// reason; the calls before it are stored; the calls after it on the
// partition fail, not permanently, so that none overtakes it; a call made
// once the failures are reported is stored.
func TestRefusedRecordsArePermanent(t *testing.T) {
	small := func(id string) *core.Event { return testEvent(id, "k") }
	sized := func(id string, n int) *core.Event {
		e := testEvent(id, "k")
		e.Data = []byte(`"` + strings.Repeat("x", n) + `"`)
		return e
	}
	unkeyed := func(id string) *core.Event {
		e := testEvent(id, "k")
		e.PartitionKey = ""
		return e
	}
	many := func(prefix string, n int) []*core.Event {
		var out []*core.Event
		for i := range n {
			out = append(out, sized(fmt.Sprintf("%s-%02d", prefix, i), 150))
		}
		return out
	}
	tests := []struct {
		name    string
		configs map[string]string // of the topic, created beforehand when set
		calls   [][]*core.Event
		refused int      // index of the call refused, -1 for none
		reason  error    // the broker's reason, nil when the producer refuses
		want    []string // in the error besides topic and partition
	}{
		{
			name:    "larger than the topic's max.message.bytes",
			configs: map[string]string{"max.message.bytes": "2048"},
			calls:   [][]*core.Event{{small("a1"), small("a2")}, {sized("big", 4000)}, {small("c1")}},
			refused: 1,
			reason:  sarama.ErrMessageSizeTooLarge,
			want:    []string{"broker 1 refused the record", "max.message.bytes"},
		},
		{
			name:    "no key on a compacted topic",
			configs: map[string]string{"cleanup.policy": "compact"},
			calls:   [][]*core.Event{{small("a1")}, {unkeyed("nokey")}, {small("c1"), small("c2")}},
			refused: 1,
			reason:  sarama.ErrInvalidRecord,
			want:    []string{"refused the record", "compacted topic"},
		},
		{
			name:    "larger than the producer sends",
			calls:   [][]*core.Event{{small("a1")}, {small("b1"), sized("huge", 1_100_000), small("b2")}, {small("c1")}},
			refused: 1,
			want:    []string{"refused before sending", "batch_max_bytes"},
		},
		{
			name:    "small records, together larger than the topic takes",
			configs: map[string]string{"max.message.bytes": "2048"},
			calls:   [][]*core.Event{many("x", 20), many("y", 7), many("z", 13)},
			refused: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A linger gathers the calls in one batch.
			s := openStream(t, map[string]any{"linger": "100ms", "topic_partitions": 1})
			topic := newTopic("refused")
			if tc.configs != nil {
				createTopic(t, topic, tc.configs)
			}
			pub := s.Publisher().(*kafka.Publisher)
			errs := make([]chan error, len(tc.calls))
			for i, events := range tc.calls {
				errs[i] = make(chan error, 1)
				done := func(err error) { errs[i] <- err }
				if err := pub.PublishEvents(context.Background(), topic, events, done); err != nil {
					t.Fatalf("publish call %d: %v", i, err)
				}
			}
			var stored []string
			for i, ch := range errs {
				var err error
				select {
				case err = <-ch:
				case <-time.After(time.Minute):
					t.Fatalf("call %d: no answer in a minute", i)
				}
				if tc.refused >= 0 && i > tc.refused {
					if err == nil || errors.Is(err, core.ErrPermanent) {
						t.Fatalf("call %d after the refused one: %v, want a failure that is not permanent", i, err)
					}
					if want := "partition 0: an earlier batch of the partition failed"; !strings.Contains(err.Error(), want) {
						t.Fatalf("call %d after the refused one: %v, want it to say %q", i, err, want)
					}
					continue
				}
				if i != tc.refused {
					if err != nil {
						t.Fatalf("call %d: %v, want it stored", i, err)
					}
					for _, e := range tc.calls[i] {
						stored = append(stored, e.ID)
					}
					continue
				}
				if err == nil {
					t.Fatalf("call %d stored, want it refused", i)
				}
				if !errors.Is(err, core.ErrPermanent) {
					t.Fatalf("call %d: %v, want an error wrapping core.ErrPermanent", i, err)
				}
				if tc.reason != nil && !errors.Is(err, tc.reason) {
					t.Fatalf("call %d: %v, want the broker's reason %v", i, err, tc.reason)
				}
				for _, want := range append([]string{fmt.Sprintf("topic %q partition 0", topic)}, tc.want...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				t.Logf("refused: %v", err)
				// The records of a call the producer refuses before
				// sending that come before the refused one are sent.
				if tc.reason == nil {
					for _, e := range tc.calls[i] {
						if strings.HasPrefix(e.ID, "huge") {
							break
						}
						stored = append(stored, e.ID)
					}
				}
			}
			publishAfterFailures(t, pub, topic, small("later").ToMessage())
			stored = append(stored, "later")
			sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			ch, err := sub.Subscribe(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range receive(t, ch, len(stored)) {
				got = append(got, m.UUID)
				checkRecord(t, m)
			}
			if strings.Join(got, ",") != strings.Join(stored, ",") {
				t.Fatalf("read %v, want %v", got, stored)
			}
		})
	}
}

// publishAfterFailures publishes m once the failures of earlier calls on
// topic are reported. Their done callbacks may still be returning when
// their errors are received, and until they have, a publish to the
// partition fails for them: it is tried again then.
func publishAfterFailures(t *testing.T, pub *kafka.Publisher, topic string, m *message.Message) {
	t.Helper()
	for try := 0; ; try++ {
		err := pub.Publish(topic, m)
		if err == nil {
			return
		}
		if try == 100 || !strings.Contains(err.Error(), "an earlier batch of the partition failed") {
			t.Fatalf("publish after the failures: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkRecord checks that m reads back as the event its id names: split
// batches keep every record's key, headers and data.
func checkRecord(t *testing.T, m *message.Message) {
	t.Helper()
	got, err := core.EventFromMessage(m)
	if err != nil {
		t.Fatalf("read back %s: %v", m.UUID, err)
	}
	want := testEvent(got.ID, "k")
	if got.Type != want.Type || got.Source != want.Source || got.Subject != want.Subject || !got.Time.Equal(want.Time) {
		t.Fatalf("read back %+v, want attributes of %+v", got, want)
	}
	if !strings.HasPrefix(string(got.Data), "{") && !strings.HasPrefix(string(got.Data), `"xxx`) {
		t.Fatalf("read back %s with data %.40q", got.ID, got.Data)
	}
	if rec, ok := kafka.RecordFromContext(m.Context()); !ok || string(rec.Key) != got.PartitionKey {
		t.Fatalf("record of %s has key %q, want %q", m.UUID, rec.Key, got.PartitionKey)
	}
}
