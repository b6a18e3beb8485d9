package embedded_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/tributary/tributary/connectors/embedded"
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

// TestPubSubStreamPerInstance runs the suite with a stream opened for
// every publisher and subscriber pair, all on one file, as separate
// processes sharing it would: what one instance publishes, another reads
// (noticed by polling), and consumer groups span instances.
func TestPubSubStreamPerInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: slower, as instances notice each other's messages by polling")
	}
	dir := t.TempDir()
	instance := func(t *testing.T, opts core.SubscribeOptions) (message.Publisher, message.Subscriber) {
		s := embedded.New()
		if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
			t.Fatalf("configure: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Open(ctx, core.Env{StateDir: dir}); err != nil {
			t.Fatalf("open: %v", err)
		}
		sub, err := s.Subscriber(opts)
		if err != nil {
			t.Fatalf("subscriber: %v", err)
		}
		owner := &sharedStream{s: s, users: 2}
		return &instancePublisher{Publisher: s.Publisher(), owner: owner}, &instanceSubscriber{Subscriber: sub, owner: owner}
	}
	features := tests.Features{
		ConsumerGroups:                   true,
		ExactlyOnceDelivery:              false,
		GuaranteedOrder:                  true,
		Persistent:                       true,
		NewSubscriberReceivesOldMessages: true,
		ForceShort:                       true,
	}
	tests.TestPubSub(t, features,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return instance(t, core.SubscribeOptions{From: core.FromBeginning})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return instance(t, core.SubscribeOptions{Group: group, From: core.FromEnd})
		})
}

// sharedStream closes its stream when its last user closes.
type sharedStream struct {
	s     *embedded.Stream
	mu    sync.Mutex
	users int
}

func (o *sharedStream) release() error {
	o.mu.Lock()
	o.users--
	last := o.users == 0
	o.mu.Unlock()
	if !last {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.s.Close(ctx)
}

type instancePublisher struct {
	message.Publisher
	owner *sharedStream
	once  sync.Once
}

func (p *instancePublisher) Close() error {
	err := p.Publisher.Close()
	p.once.Do(func() { err = errors.Join(err, p.owner.release()) })
	return err
}

type instanceSubscriber struct {
	message.Subscriber
	owner *sharedStream
	once  sync.Once
}

func (s *instanceSubscriber) Close() error {
	err := s.Subscriber.Close()
	s.once.Do(func() { err = errors.Join(err, s.owner.release()) })
	return err
}
