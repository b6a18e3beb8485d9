package embedded_test

import (
	"context"
	"reflect"
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
// message, and fails if it does not end within 10 seconds.
func readStored(t *testing.T, ch <-chan *message.Message) []string {
	t.Helper()
	ids := []string{}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return ids
			}
			m.Ack()
			ids = append(ids, m.UUID)
		case <-timeout:
			t.Fatalf("the stored subscription did not end within 10s; read %v", ids)
		}
	}
}

func TestSubscribeStoredEndsAtWhatIsStored(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	publish(t, s, "orders", "o1", "o2")
	publish(t, s, "other", "x1") // offsets are shared by every topic
	mid := time.Now()
	publish(t, s, "orders", "o3")
	publish(t, s, "other", "x2")

	tests := []struct {
		name string
		opts core.SubscribeOptions
		want []string
	}{
		{name: "from beginning", opts: core.SubscribeOptions{From: core.FromBeginning}, want: []string{"o1", "o2", "o3"}},
		{name: "from time", opts: core.SubscribeOptions{From: core.FromTime, Since: mid}, want: []string{"o3"}},
		{name: "from end", opts: core.SubscribeOptions{From: core.FromEnd}, want: []string{}},
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
		if chans[i], err = ss.SubscribeStored(context.Background(), "orders"); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	// Published after the calls: past their end, never delivered.
	publish(t, s, "orders", "late")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readStored(t, chans[i]); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("read %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSubscribeStoredNeedsNoGroup(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.(storedSubscriber).SubscribeStored(context.Background(), "orders"); err == nil {
		t.Fatal("SubscribeStored with a consumer group succeeded; want an error naming the group")
	}
}
