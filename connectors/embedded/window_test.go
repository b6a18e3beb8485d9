package embedded_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/streamtest"
)

// windowIDs returns m0..m<n-1>.
func windowIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("m", i)
	}
	return ids
}

// subscribeWindow subscribes to topic with opts until the test ends or
// the returned subscriber is closed.
func subscribeWindow(t *testing.T, s *embedded.Stream, opts core.SubscribeOptions, topic string) (message.Subscriber, <-chan *message.Message) {
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
		group  string
		window int
		want   int // messages sent before the first ack
	}{
		{name: "window_0_one_at_a_time", group: "g", window: 0, want: 1},
		{name: "window_1_one_at_a_time", group: "g", window: 1, want: 1},
		{name: "window_8", group: "g", window: 8, want: 8},
		{name: "window_8_without_group", window: 8, want: 8},
		{name: "window_16_all_ten", group: "g", window: 16, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStream(t, t.TempDir(), nil)
			ids := windowIDs(10)
			publish(t, s, "orders", ids...)
			_, msgs := subscribeWindow(t, s, core.SubscribeOptions{Group: tt.group, From: core.FromBeginning, Window: tt.window}, "orders")
			got := nextAre(t, msgs, ids[:tt.want]...)
			if tt.want == len(ids) {
				return
			}
			nothingSent(t, msgs)
			got[0].Ack()
			nextIs(t, msgs, ids[tt.want])
			nothingSent(t, msgs)
		})
	}
}

func TestWindowCommitsLowWatermark(t *testing.T) {
	tests := []struct {
		name   string
		reopen bool // close and open the stream before subscribing again
	}{
		{name: "same_stream"},
		{name: "reopened_stream", reopen: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStream(t, dir, nil)
			ids := windowIDs(10)
			publish(t, s, "orders", ids...)
			opts := core.SubscribeOptions{Group: "sink", From: core.FromBeginning, Window: 8}
			sub, msgs := subscribeWindow(t, s, opts, "orders")
			got := nextAre(t, msgs, ids[:8]...)
			for _, i := range []int{7, 5, 4, 2, 1, 0} {
				got[i].Ack()
			}
			if err := sub.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.reopen {
				if err := s.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				s = openStream(t, dir, nil)
			}
			// m3 is the first not acked: everything from it comes again,
			// the acked m4, m5 and m7 too.
			_, msgs = subscribeWindow(t, s, opts, "orders")
			nextAre(t, msgs, ids[3:]...)
		})
	}
}

func TestWindowNackResendsFollowers(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	ids := windowIDs(10)
	publish(t, s, "orders", ids...)
	opts := core.SubscribeOptions{Group: "sink", From: core.FromBeginning, Window: 8}
	sub, msgs := subscribeWindow(t, s, opts, "orders")
	got := nextAre(t, msgs, ids[:8]...)
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
	_, msgs = subscribeWindow(t, s, opts, "orders")
	publish(t, s, "orders", "m10")
	nextIs(t, msgs, "m10")
}

func TestWindowSubscribeStoredEndsOnceAllAcked(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	ids := windowIDs(10)
	publish(t, s, "orders", ids...)
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning, Window: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.(*embedded.Subscriber).SubscribeStored(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	got := nextAre(t, msgs, ids...)
	for _, m := range got[1:] {
		m.Ack()
	}
	nothingSent(t, msgs)
	got[0].Ack()
	select {
	case m, ok := <-msgs:
		if ok {
			t.Fatalf("received %s after the last stored message", m.UUID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel still open 10s after every stored message was acked")
	}
}

// TestWindowAcksInAnyOrder acks and nacks at random, from several
// goroutines, and checks that every message is acked and the group's
// offset ends past the last.
func TestWindowAcksInAnyOrder(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	ids := windowIDs(300)
	publish(t, s, "orders", ids...)
	opts := core.SubscribeOptions{Group: "sink", From: core.FromBeginning, Window: 16}
	sub, msgs := subscribeWindow(t, s, opts, "orders")
	acked := map[string]bool{}
	results := make(chan string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(acked) < len(ids) {
		select {
		case m := <-msgs:
			go func() {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
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
			t.Fatalf("%d of %d messages acked after 30s", len(acked), len(ids))
		}
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	_, msgs = subscribeWindow(t, s, opts, "orders")
	publish(t, s, "orders", "last")
	nextIs(t, msgs, "last")
}

// nextAre receives messages with ids want, in order.
func nextAre(t *testing.T, msgs <-chan *message.Message, want ...string) []*message.Message {
	t.Helper()
	return streamtest.Receive(t, msgs, 10*time.Second, want...)
}

// nextIs receives the next message and fails unless its id is want.
func nextIs(t *testing.T, msgs <-chan *message.Message, want string) *message.Message {
	t.Helper()
	return nextAre(t, msgs, want)[0]
}

// nothingSent fails when a message arrives shortly.
func nothingSent(t *testing.T, msgs <-chan *message.Message) {
	t.Helper()
	streamtest.Quiet(t, msgs, 200*time.Millisecond)
}
