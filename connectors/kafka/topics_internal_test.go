package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
)

// TestWarnWeakDurability: a topic with min.insync.replicas=1 on a cluster
// of two brokers gets a warning naming it and the fix; one with 2, or a
// single-broker cluster, none.
func TestWarnWeakDurability(t *testing.T) {
	tests := []struct {
		name    string
		brokers int
		minISR  string
		warn    bool
	}{
		{name: "one in sync of two brokers", brokers: 2, minISR: "1", warn: true},
		{name: "two in sync", brokers: 2, minISR: "2"},
		{name: "single broker", brokers: 1, minISR: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := sarama.NewMockBroker(t, 1)
			defer b.Close()
			brokers := []*sarama.MockBroker{b}
			if tc.brokers > 1 {
				other := sarama.NewMockBroker(t, 2)
				defer other.Close()
				brokers = append(brokers, other)
			}
			md := sarama.NewMockMetadataResponse(t).SetController(b.BrokerID()).SetLeader("orders", 0, b.BrokerID())
			for _, mb := range brokers {
				md.SetBroker(mb.Addr(), mb.BrokerID())
			}
			for _, mb := range brokers {
				mb.SetHandlerByMap(map[string]sarama.MockResponse{
					"MetadataRequest": md,
					"DescribeConfigsRequest": sarama.NewMockWrapper(&sarama.DescribeConfigsResponse{Version: 2, Resources: []*sarama.ResourceResponse{{
						Type: sarama.TopicResource, Name: "orders",
						Configs: []*sarama.ConfigEntry{{Name: "min.insync.replicas", Value: tc.minISR}},
					}}}),
				})
			}
			sc := sarama.NewConfig()
			sc.Version = sarama.V2_1_0_0
			sc.ApiVersionsRequest = false
			client, err := sarama.NewClient([]string{b.Addr()}, sc)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			admin, err := sarama.NewClusterAdminFromClient(client)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			tp := newTopics(client, Config{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			tp.warnWeakDurability(admin, "orders")
			if strings.Contains(logs.String(), "not read") {
				t.Fatalf("configuration not read: %s", logs.String())
			}
			warned := strings.Contains(logs.String(), "min.insync.replicas=1") && strings.Contains(logs.String(), "topic=orders")
			if warned != tc.warn {
				t.Fatalf("warned %v, want %v; log: %s", warned, tc.warn, logs.String())
			}
		})
	}
}

// TestCheckpointTopicCreatedCompactingOften checks the configuration the
// stream creates its checkpoint topic with on the real broker.
func TestCheckpointTopicCreatedCompactingOften(t *testing.T) {
	topic := "checkpoints-" + watermill.NewShortUUID()
	s := openTestStream(t, map[string]any{"checkpoint_topic": topic})
	if _, _, err := s.Checkpoints().Load(context.Background(), "any"); err != nil {
		t.Fatalf("load: %v", err)
	}
	admin, err := s.conn.topics.clusterAdmin()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name] = e.Value
	}
	want := map[string]string{"min.insync.replicas": "1"}
	for k, v := range checkpointTopicConfig {
		want[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
