package embedded_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/tributary/tributary/core"
)

// TestPubSub runs watermill's universal Pub/Sub suite twice: with
// subscribers outside any group reading from the beginning (every
// subscriber sees every retained message), and with every subscriber in one
// consumer group (subscribers share the work and its committed offsets).
func TestPubSub(t *testing.T) {
	variants := []struct {
		name     string
		group    string
		features tests.Features
	}{
		{
			name: "no_group",
			features: tests.Features{
				ConsumerGroups:                   true,
				ExactlyOnceDelivery:              false,
				GuaranteedOrder:                  true,
				Persistent:                       true,
				NewSubscriberReceivesOldMessages: true,
			},
		},
		{
			name:  "group",
			group: "suite",
			features: tests.Features{
				ConsumerGroups:      true,
				ExactlyOnceDelivery: false,
				GuaranteedOrder:     true,
				Persistent:          true,
				// A group resumes from its committed offset: a new member
				// does not read what the group already consumed.
				NewSubscriberReceivesOldMessages: false,
			},
		},
	}
	for _, v := range variants {
		// Under the race detector the suite runs its short message counts.
		v.features.ForceShort = raceEnabled
		t.Run(v.name, func(t *testing.T) {
			s := openStream(t, t.TempDir(), nil)
			pubSub := func(t *testing.T) (message.Publisher, message.Subscriber) {
				sub, err := s.Subscriber(core.SubscribeOptions{Group: v.group, From: core.FromBeginning})
				if err != nil {
					t.Fatalf("subscriber: %v", err)
				}
				return s.Publisher(), sub
			}
			groupPubSub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
				sub, err := s.Subscriber(core.SubscribeOptions{Group: group, From: core.FromEnd})
				if err != nil {
					t.Fatalf("subscriber: %v", err)
				}
				return s.Publisher(), sub
			}
			tests.TestPubSub(t, v.features, pubSub, groupPubSub)
		})
	}
}
