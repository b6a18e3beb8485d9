package memstream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/streamtest"
)

const topic = "events"

// publish stores the messages m<from>..m<to-1> on topic.
func publish(t *testing.T, st *memstream.Stream, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := st.Publisher().Publish(topic, message.NewMessage(fmt.Sprint("m", i), []byte("x"))); err != nil {
			t.Fatalf("publish m%d: %v", i, err)
		}
	}
}

func openStream(t *testing.T) *memstream.Stream {
	t.Helper()
	st := memstream.New()
	if err := st.Open(context.Background(), core.Env{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// subscribe subscribes to topic with opts; the subscriber is closed when
// the test ends.
func subscribe(t *testing.T, st *memstream.Stream, opts core.SubscribeOptions) (message.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := st.Subscriber(opts)
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

// receiveRange receives m<from>..m<to-1>, in order.
func receiveRange(t *testing.T, msgs <-chan *message.Message, from, to int) []*message.Message {
	t.Helper()
	var got []*message.Message
	for i := from; i < to; i++ {
		got = append(got, receive(t, msgs, fmt.Sprint("m", i)))
	}
	return got
}

func TestSubscribeWindowDeliversBeforeAck(t *testing.T) {
	tests := []struct {
		name   string
		window int
		want   int // messages delivered before the first ack
	}{
		{name: "window_0_one_at_a_time", window: 0, want: 1},
		{name: "window_1_one_at_a_time", window: 1, want: 1},
		{name: "window_8", window: 8, want: 8},
		{name: "window_16_all_ten", window: 16, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStream(t)
			publish(t, st, 0, 10)
			_, msgs := subscribe(t, st, core.SubscribeOptions{Group: "g", From: core.FromBeginning, Window: tt.window})
			got := receiveRange(t, msgs, 0, tt.want)
			if tt.want < 10 {
				nothingMore(t, msgs)
			}
			got[0].Ack()
			if tt.want < 10 {
				receive(t, msgs, fmt.Sprint("m", tt.want))
				nothingMore(t, msgs)
			}
		})
	}
}

func TestSubscribeWindowOneRedeliversNacked(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 3)
	_, msgs := subscribe(t, st, core.SubscribeOptions{Group: "g", From: core.FromBeginning, Window: 1})
	receive(t, msgs, "m0").Nack()
	receive(t, msgs, "m0").Ack()
	receive(t, msgs, "m1")
	nothingMore(t, msgs)
}

func TestSubscribeWindowCommitsLowWatermark(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 10)
	opts := core.SubscribeOptions{Group: "g", From: core.FromBeginning, Window: 8}
	sub, msgs := subscribe(t, st, opts)
	got := receiveRange(t, msgs, 0, 8)
	for _, i := range []int{7, 5, 4, 2, 1, 0} {
		got[i].Ack()
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if off, ok := st.Committed("g", topic); !ok || off != 3 {
		t.Fatalf("committed offset = %d, %v; want 3 (m3 is the first not acked)", off, ok)
	}
	_, msgs = subscribe(t, st, opts)
	receiveRange(t, msgs, 3, 10)
}

func TestSubscribeWindowNackRedeliversFollowers(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 10)
	_, msgs := subscribe(t, st, core.SubscribeOptions{Group: "g", From: core.FromBeginning, Window: 8})
	got := receiveRange(t, msgs, 0, 8)
	got[0].Ack()
	got[1].Ack()
	got = append(got, receiveRange(t, msgs, 8, 10)...)
	got[4].Ack()
	got[3].Nack()
	// m2 came before the nacked m3 and m4 is acked: neither comes again.
	for _, want := range []string{"m3", "m5", "m6", "m7", "m8", "m9"} {
		receive(t, msgs, want)
	}
	// A nack of a delivery the first nack made void changes nothing.
	got[5].Nack()
	nothingMore(t, msgs)
	if off, _ := st.Committed("g", topic); off != 2 {
		t.Fatalf("committed offset = %d, want 2", off)
	}
}

func TestSubscribeWithoutGroupStartsAtFrom(t *testing.T) {
	tests := []struct {
		name  string
		opts  func(since time.Time) core.SubscribeOptions
		first int
	}{
		{name: "beginning", opts: func(time.Time) core.SubscribeOptions { return core.SubscribeOptions{From: core.FromBeginning} }, first: 0},
		{name: "end", opts: func(time.Time) core.SubscribeOptions { return core.SubscribeOptions{From: core.FromEnd} }, first: 3},
		{name: "time", opts: func(since time.Time) core.SubscribeOptions {
			return core.SubscribeOptions{From: core.FromTime, Since: since}
		}, first: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStream(t)
			publish(t, st, 0, 2)
			since := time.Now()
			publish(t, st, 2, 3)
			_, msgs := subscribe(t, st, tt.opts(since))
			publish(t, st, 3, 4)
			for i := tt.first; i < 4; i++ {
				receive(t, msgs, fmt.Sprint("m", i)).Ack()
			}
			if _, ok := st.Committed("", topic); ok {
				t.Fatal("a subscription without group committed an offset")
			}
		})
	}
}

func TestSubscribeWithoutGroupEachSeesAll(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 2)
	_, a := subscribe(t, st, core.SubscribeOptions{From: core.FromBeginning})
	_, b := subscribe(t, st, core.SubscribeOptions{From: core.FromBeginning})
	for _, msgs := range []<-chan *message.Message{a, b} {
		receive(t, msgs, "m0").Ack()
		receive(t, msgs, "m1").Ack()
	}
}

func TestSubscribeGroupTakesOverFromCommitted(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 4)
	opts := core.SubscribeOptions{Group: "g", From: core.FromBeginning}
	first, a := subscribe(t, st, opts)
	receive(t, a, "m0").Ack()
	receive(t, a, "m1") // not acked
	_, b := subscribe(t, st, opts)
	nothingMore(t, b)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	receive(t, b, "m1")
}

func TestStreamCloseEndsSubscriptions(t *testing.T) {
	st := openStream(t)
	publish(t, st, 0, 2)
	opts := core.SubscribeOptions{Group: "g", From: core.FromBeginning}
	sub, msgs := subscribe(t, st, opts)
	receive(t, msgs, "m0").Ack()
	receive(t, msgs, "m1")
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-msgs:
		if ok {
			t.Fatal("message after the stream closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel still open 5s after the stream closed")
	}
	if _, err := sub.Subscribe(context.Background(), topic); err == nil {
		t.Fatal("subscribe on a closed stream succeeded")
	}
	if err := st.Open(context.Background(), core.Env{}); err != nil {
		t.Fatal(err)
	}
	// The group's committed offset outlives the close.
	_, msgs = subscribe(t, st, opts)
	receive(t, msgs, "m1")
}

func TestSubscriberOptionsChecked(t *testing.T) {
	tests := []struct {
		name string
		opts core.SubscribeOptions
	}{
		{name: "time_without_since", opts: core.SubscribeOptions{From: core.FromTime}},
		{name: "unknown_start", opts: core.SubscribeOptions{From: core.StartFrom(9)}},
		{name: "negative_window", opts: core.SubscribeOptions{Window: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := memstream.New().Subscriber(tt.opts); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// receive returns the next message, failing unless it is want.
func receive(t *testing.T, msgs <-chan *message.Message, want string) *message.Message {
	t.Helper()
	return streamtest.Receive(t, msgs, 5*time.Second, want)[0]
}

// nothingMore fails when a message arrives shortly.
func nothingMore(t *testing.T, msgs <-chan *message.Message) {
	t.Helper()
	streamtest.Quiet(t, msgs, 100*time.Millisecond)
}
