package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// openStream opens a Kafka stream on the test broker with values (brokers
// filled in) and closes it when the test ends.
func openStream(t testing.TB, values map[string]any) *kafka.Stream {
	t.Helper()
	brokers := servicetest.Kafka(t)
	v := map[string]any{"brokers": toAny(brokers)}
	for k, x := range values {
		v[k] = x
	}
	s := kafka.New()
	if err := s.Configure(core.NewConfig("test", v)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "test"}); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close stream: %v", err)
		}
	})
	return s
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// newTopic returns a topic name no other test uses.
func newTopic(prefix string) string { return prefix + "-" + watermill.NewShortUUID() }
