package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/streamtest"
)

// onePartition makes the topics the stream creates single-partition, so
// that every message is in one window.
var onePartition = map[string]any{"topic_partitions": 1}

// publishIDs publishes messages m<from>..m<to-1> on topic, in order.
func publishIDs(t *testing.T, s *kafka.Stream, topic string, from, to int) {
	t.Helper()
	var msgs []*message.Message
	for i := from; i < to; i++ {
		m := message.NewMessage(fmt.Sprint("m", i), []byte("x"))
		m.Metadata.Set(core.MetadataKey, fmt.Sprint("key-", i))
		msgs = append(msgs, m)
	}
	if err := s.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("publish m%d..m%d: %v", from, to-1, err)
	}
}

// ids returns m<from>..m<to-1>.
func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint("m", i))
	}
	return out
}

// subscribeWindow subscribes to topic with opts until the test ends or the
// returned subscriber is closed.
func subscribeWindow(t *testing.T, s *kafka.Stream, opts core.SubscribeOptions, topic string) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := s.Subscriber(opts)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sub, msgs
}

func TestWindowDeliversBeforeAck(t *testing.T) {
	tests := []struct {
		name   string
		group  bool
		window int
		want   int // messages delivered before the first ack
	}{
		{name: "window_0_one_at_a_time", group: true, window: 0, want: 1},
		{name: "window_1_one_at_a_time", group: true, window: 1, want: 1},
		{name: "window_8", group: true, window: 8, want: 8},
		{name: "window_8_without_group", window: 8, want: 8},
		{name: "window_16_all_ten", group: true, window: 16, want: 10},
	}
	s := openStream(t, onePartition)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topic := newTopic("window")
			publishIDs(t, s, topic, 0, 10)
			opts := core.SubscribeOptions{From: core.FromBeginning, Window: tt.window}
			if tt.group {
				opts.Group = newTopic("group")
			}
			_, msgs := subscribeWindow(t, s, opts, topic)
			got := nextAre(t, msgs, ids(0, tt.want)...)
			if tt.want == 10 {
				return
			}
			nothingSent(t, msgs)
			got[0].Ack()
			nextAre(t, msgs, fmt.Sprint("m", tt.want))
			nothingSent(t, msgs)
		})
	}
}

func TestWindowCommitsLowWatermark(t *testing.T) {
	s := openStream(t, onePartition)
	topic := newTopic("window")
	publishIDs(t, s, topic, 0, 10)
	opts := core.SubscribeOptions{Group: newTopic("group"), From: core.FromBeginning, Window: 8}
	sub, msgs := subscribeWindow(t, s, opts, topic)
	got := nextAre(t, msgs, ids(0, 8)...)
	for _, i := range []int{7, 5, 4, 2, 1, 0} {
		got[i].Ack()
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	// m3 is the first not acked: everything from it comes again, the
	// acked m4, m5 and m7 too.
	_, msgs = subscribeWindow(t, s, opts, topic)
	nextAre(t, msgs, ids(3, 10)...)
}

func TestWindowNackRedeliversFollowers(t *testing.T) {
	s := openStream(t, onePartition)
	topic := newTopic("window")
	publishIDs(t, s, topic, 0, 10)
	opts := core.SubscribeOptions{Group: newTopic("group"), From: core.FromBeginning, Window: 8}
	sub, msgs := subscribeWindow(t, s, opts, topic)
	got := nextAre(t, msgs, ids(0, 8)...)
	got[0].Ack()
	got[1].Ack()
	got = append(got, nextAre(t, msgs, "m8", "m9")...)
	got[4].Ack()
	got[3].Nack()
	// m2 comes before the nacked m3 and m4 is acked: neither comes again.
	again := nextAre(t, msgs, "m3", "m5", "m6", "m7", "m8", "m9")
	// A nack of a delivery the first nack made void changes nothing.
	got[6].Nack()
	nothingSent(t, msgs)
	// The acks of the deliveries made void count too.
	got[2].Ack()
	got[5].Ack()
	for _, m := range again {
		m.Ack()
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_, msgs = subscribeWindow(t, s, opts, topic)
	publishIDs(t, s, topic, 10, 11)
	nextAre(t, msgs, "m10")
}

func TestWindowSubscribeStoredEndsOnceAllAcked(t *testing.T) {
	s := openStream(t, onePartition)
	topic := newTopic("window")
	publishIDs(t, s, topic, 0, 10)
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning, Window: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	stored, ok := sub.(interface {
		SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error)
	})
	if !ok {
		t.Fatal("the subscriber has no SubscribeStored")
	}
	msgs, err := stored.SubscribeStored(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	got := nextAre(t, msgs, ids(0, 10)...)
	for _, m := range got[1:] {
		m.Ack()
	}
	nothingSent(t, msgs)
	got[0].Ack()
	select {
	case m, ok := <-msgs:
		if ok {
			t.Fatalf("received %s after the last stored record", m.UUID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("channel still open 30s after every stored record was acked")
	}
}

// TestWindowAcksInAnyOrder acks and nacks at random, from several
// goroutines, over three partitions, and checks that every message is
// acked and that the group then has nothing left to read.
func TestWindowAcksInAnyOrder(t *testing.T) {
	s := openStream(t, nil)
	topic := newTopic("window")
	const n = 300
	publishIDs(t, s, topic, 0, n)
	opts := core.SubscribeOptions{Group: newTopic("group"), From: core.FromBeginning, Window: 16}
	sub, msgs := subscribeWindow(t, s, opts, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := map[string]bool{}
	results := make(chan string)
	for len(acked) < n {
		select {
		case m := <-msgs:
			go func() {
				time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
				if rand.IntN(10) == 0 {
					m.Nack()
					return
				}
				m.Ack()
				select {
				case results <- m.UUID:
				case <-ctx.Done():
				}
			}()
		case id := <-results:
			acked[id] = true
		case <-ctx.Done():
			t.Fatalf("%d of %d messages acked after 60s", len(acked), n)
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_, msgs = subscribeWindow(t, s, opts, topic)
	last := message.NewMessage("last", []byte("x"))
	if err := s.Publisher().Publish(topic, last); err != nil {
		t.Fatal(err)
	}
	nextAre(t, msgs, "last")
}

// nextAre receives messages with ids want, in order, without acking them.
func nextAre(t *testing.T, msgs <-chan *message.Message, want ...string) []*message.Message {
	t.Helper()
	return streamtest.Receive(t, msgs, 30*time.Second, want...)
}

// nothingSent fails when a message arrives shortly.
func nothingSent(t *testing.T, msgs <-chan *message.Message) {
	t.Helper()
	streamtest.Quiet(t, msgs, 500*time.Millisecond)
}
