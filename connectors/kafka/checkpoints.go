package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core"
)

// Checkpoints is the checkpoint store of a Kafka stream: one compacted topic
// (checkpoint_topic, created with cleanup.policy=compact when missing) whose
// records are keyed by connector name and hold the JSON of core.Checkpoint.
// Compaction keeps the last record of each connector, so any sidecar that
// reads the topic resumes where the last one stopped.
type Checkpoints struct {
	cps *checkpoints
	err error // set when the store was taken before Open
}

var _ core.CheckpointStore = (*Checkpoints)(nil)

// Load returns the connector's last saved checkpoint. The first Load reads
// the topic from its oldest record up to the high watermark of each
// partition, bounded by ctx; later ones answer from memory, which Save keeps
// current.
func (s *Checkpoints) Load(ctx context.Context, connector string) (core.Checkpoint, bool, error) {
	if s.err != nil {
		return core.Checkpoint{}, false, fmt.Errorf("load checkpoint of %q: %w", connector, s.err)
	}
	return s.cps.load(ctx, connector)
}

// Save writes cp and returns once all in-sync replicas acknowledged it.
// Format and Time are filled in when zero.
func (s *Checkpoints) Save(ctx context.Context, cp core.Checkpoint) error {
	if s.err != nil {
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, s.err)
	}
	return s.cps.save(ctx, cp)
}

type checkpoints struct {
	c *conn

	mu     sync.Mutex // serialises the first load
	loaded bool
	cache  map[string]core.Checkpoint
}

func newCheckpoints(c *conn) *checkpoints {
	return &checkpoints{c: c, cache: map[string]core.Checkpoint{}}
}

func (s *checkpoints) topic() string { return s.c.cfg.CheckpointTopic }

func (s *checkpoints) load(ctx context.Context, connector string) (core.Checkpoint, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		all, err := s.readAll(ctx)
		if err != nil {
			return core.Checkpoint{}, false, fmt.Errorf("load checkpoint of %q from kafka topic %q: %w", connector, s.topic(), err)
		}
		for k, v := range s.cache { // saved while loading: newer
			all[k] = v
		}
		s.cache, s.loaded = all, true
	}
	cp, ok := s.cache[connector]
	return cp, ok, nil
}

// readAll reads every partition of the checkpoint topic up to its high
// watermark and keeps the last value of each key.
func (s *checkpoints) readAll(ctx context.Context) (map[string]core.Checkpoint, error) {
	topic := s.topic()
	if err := s.c.topics.ensure(ctx, topic, true); err != nil {
		return nil, err
	}
	type result struct {
		m   map[string]core.Checkpoint
		err error
	}
	ch := make(chan result, 1)
	stop := make(chan struct{})
	go func() {
		m, err := s.scan(topic, stop)
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-ctx.Done():
		close(stop)
		<-ch
		return nil, ctx.Err()
	}
}

func (s *checkpoints) scan(topic string, stop <-chan struct{}) (map[string]core.Checkpoint, error) {
	client := s.c.client
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	out := map[string]core.Checkpoint{}
	for _, p := range parts {
		var hwm, oldest int64
		err := retryLeader(context.Background(), client, topic, func() (err error) {
			if hwm, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return fmt.Errorf("partition %d: high watermark: %w", p, err)
			}
			if oldest, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return fmt.Errorf("partition %d: oldest offset: %w", p, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if hwm <= oldest {
			continue
		}
		if err := s.scanPartition(consumer, topic, p, oldest, hwm, out, stop); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *checkpoints) scanPartition(consumer sarama.Consumer, topic string, p int32, from, hwm int64, out map[string]core.Checkpoint, stop <-chan struct{}) error {
	var pc sarama.PartitionConsumer
	err := retryLeader(context.Background(), s.c.client, topic, func() (err error) {
		pc, err = consumer.ConsumePartition(topic, p, from)
		return err
	})
	if err != nil {
		return fmt.Errorf("partition %d: %w", p, err)
	}
	defer pc.AsyncClose()
	for {
		select {
		case km, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("partition %d: consumer closed at offset below %d", p, hwm)
			}
			key := string(km.Key)
			if km.Value == nil {
				delete(out, key) // tombstone
			} else {
				var cp core.Checkpoint
				if err := json.Unmarshal(km.Value, &cp); err != nil {
					return fmt.Errorf("partition %d offset %d (connector %q): decode checkpoint: %w", p, km.Offset, key, err)
				}
				out[key] = cp
			}
			if km.Offset+1 >= hwm {
				return nil
			}
		case cerr, ok := <-pc.Errors():
			if ok {
				return fmt.Errorf("partition %d: %w", p, cerr.Err)
			}
		case <-stop:
			return errors.New("stopped")
		}
	}
}

func (s *checkpoints) save(ctx context.Context, cp core.Checkpoint) error {
	if cp.Connector == "" {
		return errors.New("save checkpoint: empty connector name")
	}
	if cp.Format == 0 {
		cp.Format = core.CheckpointFormat
	}
	if cp.Time.IsZero() {
		cp.Time = time.Now().UTC()
	}
	topic := s.topic()
	if err := s.c.topics.ensure(ctx, topic, true); err != nil {
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, err)
	}
	value, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("save checkpoint of %q: encode: %w", cp.Connector, err)
	}
	ch := make(chan error, 1)
	c := &call{done: func(err error) { ch <- err }, p: s.c.pub, waited: true}
	rec := &sarama.ProducerMessage{
		Topic:    topic,
		Key:      sarama.StringEncoder(cp.Connector),
		Value:    sarama.ByteEncoder(value),
		Headers:  []sarama.RecordHeader{{Key: []byte(core.HeaderContentType), Value: []byte("application/json")}},
		Metadata: c,
	}
	if err := s.c.pub.enqueue(ctx, topic, c, []*sarama.ProducerMessage{rec}); err != nil {
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, err)
	}
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, err)
		}
	case <-ctx.Done():
		return fmt.Errorf("save checkpoint of %q: unacknowledged: %w", cp.Connector, ctx.Err())
	}
	s.mu.Lock()
	s.cache[cp.Connector] = cp
	s.mu.Unlock()
	return nil
}
