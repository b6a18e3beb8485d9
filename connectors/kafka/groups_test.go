package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Several consumer groups of one stream join at once, as a sidecar's sinks
// do when it starts: each reads every message. (They once shared one
// balance strategy, whose planning state the race detector caught.)
func TestGroupsJoinAtOnce(t *testing.T) {
	s := openStream(t, nil)
	topic := newTopic("groups")
	const n = 20
	for i := range n {
		if err := s.Publisher().Publish(topic, message.NewMessage(fmt.Sprintf("m-%d", i), []byte(`{}`))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	got := make([]int, 8)
	for g := range got {
		wg.Go(func() {
			sub, err := s.Subscriber(core.SubscribeOptions{Group: fmt.Sprintf("%s-group-%d", topic, g), From: core.FromBeginning})
			if err != nil {
				t.Error(err)
				return
			}
			defer sub.Close()
			ch, err := sub.Subscribe(ctx, topic)
			if err != nil {
				t.Error(err)
				return
			}
			for got[g] < n {
				select {
				case m := <-ch:
					m.Ack()
					got[g]++
				case <-ctx.Done():
					return
				}
			}
		})
	}
	wg.Wait()
	for g, k := range got {
		if k != n {
			t.Errorf("group %d read %d of %d messages", g, k, n)
		}
	}
}
