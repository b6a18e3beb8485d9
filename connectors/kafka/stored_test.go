package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// storedSubscriber is the capability `tributary events tail --no-follow`
// looks for on a stream's subscriber.
type storedSubscriber interface {
	SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error)
}

// readStored reads a SubscribeStored channel to its end, acking each
// message, and fails if it does not end within 30 seconds.
func readStored(t *testing.T, ch <-chan *message.Message) []string {
	t.Helper()
	ids := []string{}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				slices.Sort(ids)
				return ids
			}
			m.Ack()
			ids = append(ids, m.UUID)
		case <-timeout:
			t.Fatalf("the stored subscription did not end within 30s; read %v", ids)
		}
	}
}

func TestSubscribeStoredEndsAtWhatIsStored(t *testing.T) {
	s := openStream(t, nil)
	topic, empty := newTopic("stored"), newTopic("stored-empty")
	pub := s.Publisher()
	var want []string
	for i := range 12 { // keys spread over every partition
		id := fmt.Sprintf("00000000-0000-5000-8000-%012d", i)
		if err := pub.Publish(topic, testEvent(id, fmt.Sprintf("k%d", i)).ToMessage()); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}

	tests := []struct {
		name  string
		topic string
		opts  core.SubscribeOptions
		want  []string
	}{
		{name: "from beginning", topic: topic, opts: core.SubscribeOptions{From: core.FromBeginning}, want: want},
		{name: "from end", topic: topic, opts: core.SubscribeOptions{From: core.FromEnd}, want: []string{}},
		{name: "empty topic", topic: empty, opts: core.SubscribeOptions{From: core.FromBeginning}, want: []string{}},
	}
	chans := make([]<-chan *message.Message, len(tests))
	for i, tc := range tests {
		sub, err := s.Subscriber(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ss, ok := sub.(storedSubscriber)
		if !ok {
			t.Fatalf("%T has no SubscribeStored", sub)
		}
		if chans[i], err = ss.SubscribeStored(context.Background(), tc.topic); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// Published after the calls: past their end, never delivered.
	for _, tp := range []string{topic, empty} {
		if err := pub.Publish(tp, testEvent("00000000-0000-5000-8000-99999999999a", "late").ToMessage()); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readStored(t, chans[i]); !slices.Equal(got, tc.want) {
				t.Fatalf("read %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSubscribeStoredNeedsNoGroup(t *testing.T) {
	s := openStream(t, nil)
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g-" + newTopic("stored"), From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.(storedSubscriber).SubscribeStored(context.Background(), newTopic("stored")); err == nil {
		t.Fatal("SubscribeStored with a consumer group succeeded; want an error naming the group")
	}
}
