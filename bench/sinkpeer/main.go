// Command sinkpeer is the peer of Tributary's http sink in bench/sink.sh:
// the Benthos stream engine (github.com/redpanda-data/benthos/v4, the MIT
// engine inside Redpanda Connect) with its own http_client output, reading
// a Kafka topic through a consumer group. Redpanda Connect's module is not
// used here (see bench/sink.sh), so its kafka_franz input is replaced by
// kafka_group, a small input written against Benthos' public plugin API on
// the same client kafka_franz uses (franz-go): it polls the group's
// partitions, hands each fetch to the pipeline as one batch and marks the
// records for commit once the output acknowledged the batch (at least
// once, as kafka_franz does).
//
// It lives in its own module so that the project's go.mod never requires
// a peer.
package main

import (
	"context"
	"errors"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func main() {
	spec := service.NewConfigSpec().
		Summary("Reads a Kafka topic through a consumer group, one fetch per batch.").
		Field(service.NewStringListField("seed_brokers")).
		Field(service.NewStringField("topic")).
		Field(service.NewStringField("consumer_group")).
		Field(service.NewIntField("max_batch").Default(1024))
	err := service.RegisterBatchInput("kafka_group", spec, func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchInput, error) {
		brokers, err := conf.FieldStringList("seed_brokers")
		if err != nil {
			return nil, err
		}
		topic, err := conf.FieldString("topic")
		if err != nil {
			return nil, err
		}
		group, err := conf.FieldString("consumer_group")
		if err != nil {
			return nil, err
		}
		maxBatch, err := conf.FieldInt("max_batch")
		if err != nil {
			return nil, err
		}
		return service.AutoRetryNacksBatched(&groupInput{brokers: brokers, topic: topic, group: group, maxBatch: maxBatch}), nil
	})
	if err != nil {
		panic(err)
	}
	service.RunCLI(context.Background())
}

type groupInput struct {
	brokers      []string
	topic, group string
	maxBatch     int
	mu           sync.Mutex
	cl           *kgo.Client
}

func (g *groupInput) Connect(context.Context) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(g.brokers...),
		kgo.ConsumeTopics(g.topic),
		kgo.ConsumerGroup(g.group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.cl = cl
	g.mu.Unlock()
	return nil
}

func (g *groupInput) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	g.mu.Lock()
	cl := g.cl
	g.mu.Unlock()
	if cl == nil {
		return nil, nil, service.ErrNotConnected
	}
	fs := cl.PollRecords(ctx, g.maxBatch)
	cl.AllowRebalance()
	if errors.Is(fs.Err0(), context.Canceled) || errors.Is(fs.Err0(), context.DeadlineExceeded) {
		return nil, nil, ctx.Err()
	}
	if err := fs.Err(); err != nil {
		return nil, nil, err
	}
	recs := fs.Records()
	batch := make(service.MessageBatch, len(recs))
	for i, r := range recs {
		m := service.NewMessage(r.Value)
		m.MetaSetMut("kafka_key", string(r.Key))
		for _, h := range r.Headers {
			m.MetaSetMut(h.Key, string(h.Value))
		}
		batch[i] = m
	}
	return batch, func(_ context.Context, err error) error {
		if err == nil {
			cl.MarkCommitRecords(recs...)
		}
		return nil
	}, nil
}

func (g *groupInput) Close(ctx context.Context) error {
	g.mu.Lock()
	cl := g.cl
	g.cl = nil
	g.mu.Unlock()
	if cl != nil {
		_ = cl.CommitMarkedOffsets(ctx)
		cl.Close()
	}
	return nil
}
