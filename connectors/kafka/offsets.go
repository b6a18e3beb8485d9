package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core/runtime"
)

var _ runtime.GroupOffsets = (*Stream)(nil)

// CommittedOffsets returns the offsets group committed on the partitions
// of topics (an OffsetFetch request to the group's coordinator), with each
// partition's high water mark (a ListOffsets request to its leader) and
// the lag between them, in topic then partition order. A partition the
// group never committed on, and a topic that does not exist, are left
// out. It uses the stream's own client; it is safe for concurrent use and
// returns once ctx is done (the requests then finish on their own within
// the client's timeouts).
func (s *Stream) CommittedOffsets(ctx context.Context, group string, topics []string) ([]runtime.PartitionOffset, error) {
	c, err := s.open()
	if err != nil {
		return nil, fmt.Errorf("offsets of consumer group %q: %w", group, err)
	}
	type answer struct {
		offs []runtime.PartitionOffset
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		offs, err := c.committedOffsets(group, topics)
		ch <- answer{offs, err}
	}()
	select {
	case a := <-ch:
		return a.offs, a.err
	case <-ctx.Done():
		return nil, fmt.Errorf("offsets of consumer group %q from kafka brokers %s: %w", group, strings.Join(c.cfg.Brokers, ","), ctx.Err())
	}
}

func (c *conn) committedOffsets(group string, topics []string) ([]runtime.PartitionOffset, error) {
	parts := make(map[string][]int32, len(topics))
	for _, topic := range topics {
		ps, err := c.client.Partitions(topic)
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("partitions of kafka topic %q: %w", topic, err)
		}
		parts[topic] = ps
	}
	if len(parts) == 0 {
		return nil, nil
	}
	admin, err := c.topics.clusterAdmin()
	if err != nil {
		return nil, fmt.Errorf("offsets of consumer group %q: reach the cluster: %w", group, err)
	}
	resp, err := admin.ListConsumerGroupOffsets(group, parts)
	if err != nil {
		return nil, fmt.Errorf("fetch the committed offsets of consumer group %q: %w", group, err)
	}
	if !errors.Is(resp.Err, sarama.ErrNoError) {
		return nil, fmt.Errorf("fetch the committed offsets of consumer group %q: %w (the client's principal needs DESCRIBE on the group)", group, resp.Err)
	}
	var out []runtime.PartitionOffset
	for _, topic := range topics {
		for _, p := range parts[topic] {
			b := resp.GetBlock(topic, p)
			if b == nil || b.Offset < 0 {
				continue
			}
			if !errors.Is(b.Err, sarama.ErrNoError) {
				return nil, fmt.Errorf("committed offset of consumer group %q on kafka topic %q partition %d: %w", group, topic, p, b.Err)
			}
			end, err := c.client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("end offset of kafka topic %q partition %d: %w", topic, p, err)
			}
			out = append(out, runtime.PartitionOffset{Topic: topic, Partition: p, Offset: b.Offset, End: end, Lag: max(end-b.Offset, 0)})
		}
	}
	return out, nil
}
