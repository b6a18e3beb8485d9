package kafka_test

import (
	"os"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/tributary/tributary/core"
)

func pubSub(t *testing.T, values map[string]any, opts core.SubscribeOptions) (message.Publisher, message.Subscriber) {
	s := openStream(t, values)
	sub, err := s.Subscriber(opts)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	return s.Publisher(), sub
}

// suiteFeatures are the honest capabilities of the stream. Order is kept per
// partition only: GuaranteedOrder holds for single-partition topics, which
// TestPubSubOrdered uses. TestReconnect needs a broker restart command and
// is skipped. The full-size suite runs with TRIBUTARY_KAFKA_FULL_SUITE=1.
func suiteFeatures(groups, ordered bool) tests.Features {
	return tests.Features{
		ConsumerGroups:                   groups,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  ordered,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: !groups,
		ForceShort:                       os.Getenv("TRIBUTARY_KAFKA_FULL_SUITE") != "1",
	}
}

func TestPubSub(t *testing.T) {
	tests.TestPubSub(t, suiteFeatures(true, false),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return pubSub(t, nil, core.SubscribeOptions{Group: "test", From: core.FromBeginning})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return pubSub(t, nil, core.SubscribeOptions{Group: group, From: core.FromBeginning})
		},
	)
}

func TestPubSubOrdered(t *testing.T) {
	one := map[string]any{"topic_partitions": 1}
	tests.TestPubSub(t, suiteFeatures(true, true),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return pubSub(t, one, core.SubscribeOptions{Group: "test-ordered", From: core.FromBeginning})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return pubSub(t, one, core.SubscribeOptions{Group: group, From: core.FromBeginning})
		},
	)
}

func TestPubSubNoGroup(t *testing.T) {
	tests.TestPubSub(t, suiteFeatures(false, false),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return pubSub(t, nil, core.SubscribeOptions{From: core.FromBeginning})
		},
		nil,
	)
}
