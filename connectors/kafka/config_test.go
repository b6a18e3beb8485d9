package kafka_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
)

func validValues() map[string]any {
	return map[string]any{
		"brokers":          []any{"127.0.0.1:9092"},
		"topic_partitions": 3,
		"linger":           "5ms",
		"compression":      "none",
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(v map[string]any)
		path   string // the *core.FieldError path expected; empty means valid
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "no brokers", change: func(v map[string]any) { delete(v, "brokers") }, path: "brokers"},
		{name: "broker without port", change: func(v map[string]any) { v["brokers"] = []any{"127.0.0.1:9092", "kafka-2"} }, path: "brokers[1]"},
		{name: "zero partitions", change: func(v map[string]any) { v["topic_partitions"] = 0 }, path: "topic_partitions"},
		{name: "zero replication", change: func(v map[string]any) { v["topic_replication"] = 0 }, path: "topic_replication"},
		{name: "bad linger", change: func(v map[string]any) { v["linger"] = "soon" }, path: "linger"},
		{name: "negative linger", change: func(v map[string]any) { v["linger"] = "-1s" }, path: "linger"},
		{name: "unknown compression", change: func(v map[string]any) { v["compression"] = "brotli" }, path: "compression"},
		{name: "bad checkpoint topic", change: func(v map[string]any) { v["checkpoint_topic"] = "check points" }, path: "checkpoint_topic"},
		{name: "negative batch messages", change: func(v map[string]any) { v["batch_max_messages"] = -1 }, path: "batch_max_messages"},
		{name: "huge batch bytes", change: func(v map[string]any) { v["batch_max_bytes"] = 1 << 30 }, path: "batch_max_bytes"},
		{name: "bad version", change: func(v map[string]any) { v["kafka_version"] = "latest" }, path: "kafka_version"},
		{name: "old version", change: func(v map[string]any) { v["kafka_version"] = "0.10.2" }, path: "kafka_version"},
		{name: "cert without key", change: func(v map[string]any) { v["tls"] = map[string]any{"enabled": true, "cert_file": "c.pem"} }, path: "tls.key_file"},
		{name: "sasl scram", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"}
		}},
		{name: "sasl unknown mechanism", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "GSSAPI", "username": "u", "password": "p"}
		}, path: "sasl.mechanism"},
		{name: "oauth static token", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER", "token": "t"}
		}},
		{name: "oauth client credentials", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER", "token_url": "https://idp.example.com/token", "client_id": "c", "client_secret": "s", "scopes": []any{"kafka"}}
		}},
		{name: "oauth without a token source", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER"}
		}, path: "sasl.token"},
		{name: "oauth two token sources", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER", "token": "t", "token_file": "/run/token"}
		}, path: "sasl.token"},
		{name: "oauth token url without client", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER", "token_url": "https://idp.example.com/token"}
		}, path: "sasl.client_id"},
		{name: "oauth bad token url", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "OAUTHBEARER", "token_url": "idp/token", "client_id": "c", "client_secret": "s"}
		}, path: "sasl.token_url"},
		{name: "scram with a token", change: func(v map[string]any) {
			v["sasl"] = map[string]any{"mechanism": "SCRAM-SHA-256", "username": "u", "password": "p", "token": "t"}
		}, path: "sasl.token"},
		{name: "min insync above replication", change: func(v map[string]any) { v["topic_min_insync_replicas"] = 2 }, path: "topic_min_insync_replicas"},
		{name: "zero checkpoint partitions", change: func(v map[string]any) { v["checkpoint_partitions"] = 0 }, path: "checkpoint_partitions"},
		{name: "checkpoint min insync above replication", change: func(v map[string]any) {
			v["checkpoint_replication"] = 3
			v["checkpoint_min_insync_replicas"] = 4
		}, path: "checkpoint_min_insync_replicas"},
		{name: "sasl without user", change: func(v map[string]any) { v["sasl"] = map[string]any{"password": "p"} }, path: "sasl.username"},
		{name: "unknown key", change: func(v map[string]any) { v["acks"] = "all" }, path: "acks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := validValues()
			tc.change(v)
			_, err := kafka.ParseConfig(core.NewConfig("stream", v))
			if tc.path == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want one at %q", tc.path)
			}
			var found bool
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if errors.As(e, &fe) && fe.Path == tc.path {
					found = true
				}
			}
			if !found {
				t.Fatalf("error %q has no *core.FieldError at %q", err, tc.path)
			}
		})
	}
}

func TestParseConfigReportsEveryProblem(t *testing.T) {
	v := validValues()
	v["topic_partitions"] = 0
	v["compression"] = "brotli"
	v["linger"] = "later"
	_, err := kafka.ParseConfig(core.NewConfig("stream", v))
	if got := len(core.Flatten(err)); got != 3 {
		t.Fatalf("got %d problems, want 3: %v", got, err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := kafka.ParseConfig(core.NewConfig("stream", map[string]any{"brokers": []any{"k:9092"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.CreateTopics || c.TopicPartitions != 3 || c.TopicReplication != 1 ||
		c.CheckpointTopic != "tributary.checkpoints" || c.Linger != 0 ||
		c.Compression != kafka.CompressionNone || c.ClientID != "tributary" ||
		c.KafkaVersion != "3.6.0" || c.BatchMaxBytes != 512<<10 || c.DialTimeout != 10*time.Second || c.SASL != nil {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// TestParseConfigDialTimeoutZero: a dial_timeout of 0 has always meant the
// default.
func TestParseConfigDialTimeoutZero(t *testing.T) {
	v := validValues()
	v["dial_timeout"] = "0"
	c, err := kafka.ParseConfig(core.NewConfig("stream", v))
	if err != nil {
		t.Fatal(err)
	}
	if c.DialTimeout != 10*time.Second {
		t.Fatalf("dial_timeout 0 decoded to %s, want the default 10s", c.DialTimeout)
	}
}

// TestSampleConfig loads sample.yaml, the file README.md shows.
func TestSampleConfig(t *testing.T) {
	raw, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stream struct {
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
		} `yaml:"stream"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	if doc.Stream.Type != kafka.Type {
		t.Fatalf("sample.yaml stream type %q, want %q", doc.Stream.Type, kafka.Type)
	}
	c, err := kafka.ParseConfig(core.NewConfig("stream", doc.Stream.Config))
	if err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	if c.Linger != 0 || strings.Join(c.Brokers, ",") != "127.0.0.1:9092" {
		t.Fatalf("sample.yaml decoded to %+v", c)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), strings.TrimSpace(string(raw))) {
		t.Fatal("README.md does not show sample.yaml as it is")
	}
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Stream(kafka.Type)
	if !ok {
		t.Fatal("kafka stream not registered")
	}
	if _, ok := spec.New().(*kafka.Stream); !ok {
		t.Fatal("New does not return a *kafka.Stream")
	}
}

// TestCheckpointGolden decodes the frozen format-1 checkpoint record value.
func TestCheckpointGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/checkpoint_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var cp core.Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		t.Fatal(err)
	}
	want := core.Checkpoint{
		Format:    1,
		Connector: "legacy_orders",
		Position:  core.Position{Version: 2, Data: []byte(`{"lsn":"0/16B3748"}`)},
		Time:      time.Date(2026, 3, 14, 9, 26, 53, 589793000, time.UTC),
	}
	if cp.Format != want.Format || cp.Connector != want.Connector || cp.Position.Version != want.Position.Version ||
		string(cp.Position.Data) != string(want.Position.Data) || !cp.Time.Equal(want.Time) {
		t.Fatalf("golden checkpoint decoded to %+v, want %+v", cp, want)
	}
}
