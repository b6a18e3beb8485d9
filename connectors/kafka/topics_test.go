package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	wmessage "github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// TestSubscribeTopicsOneMember subscribes a group to three topics at once:
// one member of the group reads all three, each topic's messages come on
// that topic's channel, and the offsets it commits hold for every topic, so
// the next member reads on from them.
func TestSubscribeTopicsOneMember(t *testing.T) {
	brokers := servicetest.Kafka(t)
	s := openStream(t, nil)
	topics := []string{newTopic("many-a"), newTopic("many-b"), newTopic("many-c")}
	group := "g-" + newTopic("many")
	pub := s.Publisher()
	publish := func(round int) {
		for i, topic := range topics {
			id := fmt.Sprintf("00000000-0000-5000-8000-%012d", round*10+i)
			if err := pub.Publish(topic, testEvent(id, topic).ToMessage()); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1)
	subscribe := func() (map[string]<-chan *wmessage.Message, func()) {
		sub, err := s.Subscriber(core.SubscribeOptions{Group: group, From: core.FromBeginning})
		if err != nil {
			t.Fatal(err)
		}
		ts, ok := sub.(core.TopicsSubscriber)
		if !ok {
			t.Fatal("a group subscriber does not implement core.TopicsSubscriber")
		}
		chs, err := ts.SubscribeTopics(context.Background(), topics)
		if err != nil {
			t.Fatal(err)
		}
		return chs, func() { _ = sub.Close() }
	}
	chs, closeSub := subscribe()
	if len(chs) != len(topics) {
		t.Fatalf("%d channels for %d topics", len(chs), len(topics))
	}
	for i, topic := range topics {
		m := receive(t, chs[topic], 1)[0]
		if want := fmt.Sprintf("00000000-0000-5000-8000-%012d", 10+i); m.UUID != want {
			t.Errorf("topic %s: message %s, want %s", topic, m.UUID, want)
		}
	}

	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(groups) != 1 {
		t.Fatalf("describe group %s: %v %v", group, groups, err)
	}
	if n := len(groups[0].Members); n != 1 {
		t.Fatalf("group %s has %d members, want one for the three topics", group, n)
	}
	for id, m := range groups[0].Members {
		a, err := m.GetMemberAssignment()
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range topics {
			if len(a.Topics[topic]) == 0 {
				t.Errorf("member %s is assigned %v, not topic %s", id, a.Topics, topic)
			}
		}
	}
	closeSub()

	// The next member reads on from the committed offsets: only round 2.
	publish(2)
	chs, closeSub = subscribe()
	defer closeSub()
	for i, topic := range topics {
		m := receive(t, chs[topic], 1)[0]
		if want := fmt.Sprintf("00000000-0000-5000-8000-%012d", 20+i); m.UUID != want {
			t.Errorf("topic %s after a restart: message %s, want %s (round 1 was acked)", topic, m.UUID, want)
		}
	}
}

// TestSubscribeTopicsNeedsGroup checks that several topics as one member
// take a group, and say so.
func TestSubscribeTopicsNeedsGroup(t *testing.T) {
	s := openStream(t, nil)
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = sub.(core.TopicsSubscriber).SubscribeTopics(ctx, []string{newTopic("x"), newTopic("y")})
	if err == nil || !strings.Contains(err.Error(), "consumer group") {
		t.Fatalf("SubscribeTopics without a group: %v, want an error naming the consumer group", err)
	}
}
