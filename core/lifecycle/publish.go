package lifecycle

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// StreamPublisher returns a Publisher that publishes to the publisher the
// stream returns once open, each event on the topic topic names for its
// type. It uses the publisher's core.EventPublisher capability when it has
// it.
func StreamPublisher(publisher func() message.Publisher, topic func(eventType string) string) Publisher {
	return func(ctx context.Context, evs []*core.Event) error {
		pub := publisher()
		if pub == nil {
			return fmt.Errorf("publish lifecycle events: the stream is not open")
		}
		byTopic := map[string][]*core.Event{}
		var order []string
		for _, ev := range evs {
			tp := topic(ev.Type)
			if _, ok := byTopic[tp]; !ok {
				order = append(order, tp)
			}
			byTopic[tp] = append(byTopic[tp], ev)
		}
		for _, tp := range order {
			batch := byTopic[tp]
			if ep, ok := pub.(core.EventPublisher); ok {
				done := make(chan error, 1)
				if err := ep.PublishEvents(ctx, tp, batch, func(err error) { done <- err }); err != nil {
					return fmt.Errorf("publish to %s: %w", tp, err)
				}
				select {
				case err := <-done:
					if err != nil {
						return fmt.Errorf("publish to %s: %w", tp, err)
					}
				case <-ctx.Done():
					return fmt.Errorf("publish to %s: %w", tp, ctx.Err())
				}
				continue
			}
			msgs := make([]*message.Message, len(batch))
			for i, ev := range batch {
				msgs[i] = ev.ToMessage()
			}
			if err := pub.Publish(tp, msgs...); err != nil {
				return fmt.Errorf("publish to %s: %w", tp, err)
			}
		}
		return nil
	}
}
