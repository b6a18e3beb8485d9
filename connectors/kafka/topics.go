package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// ErrTopicMissing is returned (wrapped, naming the topic and the fix) when a
// topic does not exist and the stream may not create it.
var ErrTopicMissing = errors.New("kafka topic missing")

// topics makes sure the topics the stream uses exist, creating them when
// allowed. Each topic is checked once per stream; concurrent callers for
// one topic share the check.
type topics struct {
	client sarama.Client
	cfg    Config
	log    *slog.Logger

	mu      sync.Mutex
	admin   sarama.ClusterAdmin
	known   map[string]bool
	pending map[string]*topicCheck
}

type topicCheck struct {
	done chan struct{}
	err  error
}

func newTopics(client sarama.Client, cfg Config, log *slog.Logger) *topics {
	return &topics{client: client, cfg: cfg, log: log, known: map[string]bool{}, pending: map[string]*topicCheck{}}
}

// checkpointTopicConfig is the configuration of the checkpoint topic
// besides min.insync.replicas. The stream reads the topic at start-up, so
// compaction should keep it short: segments roll every 10 minutes or 16 MiB
// (compaction only cleans rolled segments), and the cleaner takes a log
// once a tenth of it is superseded records rather than half.
var checkpointTopicConfig = map[string]string{
	"cleanup.policy":            "compact",
	"segment.ms":                "600000",
	"segment.bytes":             "16777216",
	"min.cleanable.dirty.ratio": "0.1",
	"max.compaction.lag.ms":     "3600000",
}

// detail returns how to create topic: the checkpoint topic (compact)
// or an events topic.
func (t *topics) detail(compact bool) *sarama.TopicDetail {
	c := t.cfg
	d := &sarama.TopicDetail{
		NumPartitions:     int32(c.TopicPartitions),
		ReplicationFactor: int16(c.TopicReplication),
		ConfigEntries:     map[string]*string{},
	}
	minISR := minInsync(c.MinInsyncReplicas, c.TopicReplication)
	if compact {
		d.NumPartitions = int32(c.CheckpointPartitions)
		d.ReplicationFactor = int16(c.checkpointReplication())
		minISR = minInsync(c.CheckpointMinInsyncReplicas, c.checkpointReplication())
		for k, v := range checkpointTopicConfig {
			d.ConfigEntries[k] = &v
		}
	}
	isr := strconv.Itoa(minISR)
	d.ConfigEntries["min.insync.replicas"] = &isr
	return d
}

// ensure returns nil once topic exists. compact asks for a compacted topic
// (cleanup.policy=compact) when it has to be created. It returns when ctx
// ends; the check itself goes on and its result is kept for the next call.
func (t *topics) ensure(ctx context.Context, topic string, compact bool) error {
	t.mu.Lock()
	if t.known[topic] {
		t.mu.Unlock()
		return nil
	}
	chk, running := t.pending[topic]
	if !running {
		if err := checkTopicName(topic); err != nil {
			t.mu.Unlock()
			return fmt.Errorf("kafka topic: %w", err)
		}
		chk = &topicCheck{done: make(chan struct{})}
		t.pending[topic] = chk
		go t.check(topic, compact, chk)
	}
	t.mu.Unlock()
	select {
	case <-chk.done:
		return chk.err
	case <-ctx.Done():
		return fmt.Errorf("check kafka topic %q: %w", topic, ctx.Err())
	}
}

// any returns a topic known to exist, if there is one.
func (t *topics) any() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic := range t.known {
		return topic, true
	}
	return "", false
}

func (t *topics) check(topic string, compact bool, chk *topicCheck) {
	chk.err = t.create(topic, compact)
	t.mu.Lock()
	delete(t.pending, topic)
	if chk.err == nil {
		t.known[topic] = true
	}
	t.mu.Unlock()
	close(chk.done)
}

func (t *topics) clusterAdmin() (sarama.ClusterAdmin, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admin != nil {
		return t.admin, nil
	}
	// The admin shares the stream's client; it is never closed itself,
	// since closing it would close the client.
	a, err := sarama.NewClusterAdminFromClient(t.client)
	if err != nil {
		return nil, err
	}
	t.admin = a
	return a, nil
}

func (t *topics) create(topic string, compact bool) error {
	admin, err := t.clusterAdmin()
	if err != nil {
		return fmt.Errorf("kafka topic %q: reach the cluster controller: %w", topic, err)
	}
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return fmt.Errorf("describe kafka topic %q: %w", topic, err)
	}
	exists := false
	for _, m := range md {
		if m.Name != topic {
			continue
		}
		switch {
		case errors.Is(m.Err, sarama.ErrNoError):
			exists = true
		case errors.Is(m.Err, sarama.ErrUnknownTopicOrPartition):
		case errors.Is(m.Err, sarama.ErrTopicAuthorizationFailed):
			return fmt.Errorf("kafka topic %q: not authorized to describe it: grant the client's principal DESCRIBE and WRITE (and READ for subscribers) on the topic: %w", topic, m.Err)
		default:
			return fmt.Errorf("describe kafka topic %q: %w", topic, m.Err)
		}
	}
	if !exists {
		if !t.cfg.CreateTopics {
			d := t.detail(compact)
			return fmt.Errorf("kafka topic %q does not exist and create_topics is false: create it (kafka-topics.sh --create --topic %s --partitions %d --replication-factor %d%s) or set create_topics: true: %w",
				topic, topic, d.NumPartitions, d.ReplicationFactor, configFlags(d), ErrTopicMissing)
		}
		detail := t.detail(compact)
		err := admin.CreateTopic(topic, detail, false)
		switch {
		case err == nil, errors.Is(err, sarama.ErrTopicAlreadyExists):
		case errors.Is(err, sarama.ErrTopicAuthorizationFailed), errors.Is(err, sarama.ErrClusterAuthorizationFailed):
			return fmt.Errorf("kafka topic %q does not exist and the client may not create it: create it beforehand (kafka-topics.sh --create --topic %s --partitions %d --replication-factor %d%s) or grant the client's principal CREATE on the cluster or topic: %w",
				topic, topic, detail.NumPartitions, detail.ReplicationFactor, configFlags(detail), err)
		case errors.Is(err, sarama.ErrInvalidReplicationFactor):
			return fmt.Errorf("create kafka topic %q: replication factor %d is more than the cluster's brokers; lower topic_replication (checkpoint_replication for the checkpoint topic): %w", topic, detail.ReplicationFactor, err)
		default:
			return fmt.Errorf("create kafka topic %q: %w", topic, err)
		}
	}
	if err := t.waitLeaders(topic); err != nil {
		return err
	}
	t.warnWeakDurability(admin, topic)
	return nil
}

// warnWeakDurability warns when topic has min.insync.replicas 1 on a
// cluster of more than one broker: acks from all in-sync replicas then
// means one copy when the others fall behind.
func (t *topics) warnWeakDurability(admin sarama.ClusterAdmin, topic string) {
	if len(t.client.Brokers()) < 2 {
		return
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"min.insync.replicas"}})
	if err != nil {
		t.log.Debug("kafka topic configuration not read", "topic", topic, "err", err)
		return
	}
	for _, e := range entries {
		if e.Name == "min.insync.replicas" && e.Value == "1" {
			t.log.Warn("kafka topic has min.insync.replicas=1 on a cluster of several brokers: an acknowledged event may be on one broker only; raise it (kafka-configs.sh --alter --entity-type topics --entity-name TOPIC --add-config min.insync.replicas=2)",
				"topic", topic, "brokers", len(t.client.Brokers()))
		}
	}
}

// waitLeaders waits until the client's metadata shows a leader for every
// partition of topic, so that the first produce or fetch after creation does
// not fail.
func (t *topics) waitLeaders(topic string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := t.client.RefreshMetadata(topic)
		if err == nil {
			var parts []int32
			if parts, err = t.client.Partitions(topic); err == nil && len(parts) > 0 {
				ready := true
				for _, p := range parts {
					if _, lerr := t.client.Leader(topic, p); lerr != nil {
						ready = false
						err = lerr
						break
					}
				}
				if ready {
					return nil
				}
			} else if err == nil {
				err = errors.New("no partitions yet")
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kafka topic %q has no leader for all partitions after 15s: %w", topic, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// configFlags returns the --config flags of kafka-topics.sh that create a
// topic as d says.
func configFlags(d *sarama.TopicDetail) string {
	keys := make([]string, 0, len(d.ConfigEntries))
	for k := range d.ConfigEntries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " --config %s=%s", k, *d.ConfigEntries[k])
	}
	return b.String()
}
