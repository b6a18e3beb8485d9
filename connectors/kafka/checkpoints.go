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
// (checkpoint_topic, created when missing with cleanup.policy=compact and
// settings that keep compaction frequent, see topics.go) whose
// records are keyed by connector name and hold the JSON of core.Checkpoint.
// Compaction keeps the last record of each connector, so any sidecar that
// reads the topic resumes where the last one stopped.
type Checkpoints struct {
	cps *checkpoints
	err error // set when the store was taken before Open
}

var _ core.CheckpointStore = (*Checkpoints)(nil)

// Load returns the connector's last saved checkpoint. The store reads the
// topic backwards from its end, in windows that double, until the
// connector's last record is found or the oldest offset is reached: a
// connector that saves as it runs has its last record near the end, so
// start-up reads a few thousand records however many the topic holds
// before compaction. What a window shows of other connectors is kept, so
// their Load answers from memory; Save keeps that memory current. Bounded
// by ctx.
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

// firstWindow is the number of records per partition the first backward
// read takes; each further read takes twice the last, up to maxWindow.
const (
	firstWindow = 4096
	maxWindow   = 1 << 20
)

type checkpoints struct {
	c *conn

	mu    sync.Mutex // serialises reads of the topic
	cache map[string]core.Checkpoint
	// gone holds the connectors whose last record is a tombstone.
	gone map[string]bool
	// parts is where each partition's backward read stands; nil until the
	// first Load.
	parts []*scanState
	// exhausted: every partition is read back to its oldest offset.
	exhausted bool
	// read counts the records read from the topic.
	read int64
}

// scanState is the backward read of one partition: records from `from` up
// to the high watermark at the first Load have been read.
type scanState struct {
	id     int32
	oldest int64
	from   int64
	window int64
}

func newCheckpoints(c *conn) *checkpoints {
	return &checkpoints{c: c, cache: map[string]core.Checkpoint{}, gone: map[string]bool{}}
}

func (s *checkpoints) topic() string { return s.c.cfg.CheckpointTopic }

func (s *checkpoints) load(ctx context.Context, connector string) (core.Checkpoint, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wrap := func(err error) error {
		return fmt.Errorf("load checkpoint of %q from kafka topic %q: %w", connector, s.topic(), err)
	}
	if s.parts == nil {
		if err := s.start(ctx); err != nil {
			return core.Checkpoint{}, false, wrap(err)
		}
	}
	for {
		if cp, ok := s.cache[connector]; ok {
			return cp, true, nil
		}
		if s.gone[connector] {
			return core.Checkpoint{}, false, nil
		}
		if s.exhausted {
			return core.Checkpoint{}, false, nil
		}
		more, err := s.readBack(ctx)
		if err != nil {
			return core.Checkpoint{}, false, wrap(err)
		}
		s.exhausted = !more
	}
}

// start finds the oldest offset and high watermark of each partition of
// the checkpoint topic, creating it when missing.
func (s *checkpoints) start(ctx context.Context) error {
	topic := s.topic()
	if err := s.c.topics.ensure(ctx, topic, true); err != nil {
		return err
	}
	client := s.c.client
	ids, err := client.Partitions(topic)
	if err != nil {
		return fmt.Errorf("list partitions: %w", err)
	}
	parts := make([]*scanState, 0, len(ids))
	for _, p := range ids {
		var hwm, oldest int64
		err := retryLeader(ctx, client, topic, func() (err error) {
			if hwm, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return fmt.Errorf("partition %d: high watermark: %w", p, err)
			}
			if oldest, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
				return fmt.Errorf("partition %d: oldest offset: %w", p, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		parts = append(parts, &scanState{id: p, oldest: oldest, from: hwm, window: firstWindow})
	}
	s.parts = parts
	return nil
}

// readBack reads the next window back of every partition not read to its
// oldest offset, and keeps the last record of each connector it shows
// that no newer window showed. It reports whether anything is left to
// read.
func (s *checkpoints) readBack(ctx context.Context) (more bool, err error) {
	consumer, err := sarama.NewConsumerFromClient(s.c.client)
	if err != nil {
		return false, err
	}
	defer consumer.Close()
	for _, ps := range s.parts {
		if ps.from <= ps.oldest {
			continue
		}
		from := max(ps.oldest, ps.from-ps.window)
		found := map[string]*core.Checkpoint{} // nil: a tombstone
		if err := s.readWindow(ctx, consumer, ps.id, from, ps.from, found); err != nil {
			return false, err
		}
		for k, cp := range found {
			if _, ok := s.cache[k]; ok || s.gone[k] {
				continue // a newer window, or a Save, had it
			}
			if cp == nil {
				s.gone[k] = true
			} else {
				s.cache[k] = *cp
			}
		}
		ps.from = from
		ps.window = min(2*ps.window, maxWindow)
		if from > ps.oldest {
			more = true
		}
	}
	return more, nil
}

// readWindow reads the records of partition p from offset from up to end
// (exclusive) into found, the later record of a key replacing the earlier.
func (s *checkpoints) readWindow(ctx context.Context, consumer sarama.Consumer, p int32, from, end int64, found map[string]*core.Checkpoint) error {
	topic := s.topic()
	var pc sarama.PartitionConsumer
	err := retryLeader(ctx, s.c.client, topic, func() (err error) {
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
				return fmt.Errorf("partition %d: consumer closed at offset below %d", p, end)
			}
			if km.Offset >= end {
				return nil // compaction left nothing more in the window
			}
			s.read++
			key := string(km.Key)
			if km.Value == nil {
				found[key] = nil // tombstone
			} else {
				cp := new(core.Checkpoint)
				if err := json.Unmarshal(km.Value, cp); err != nil {
					return fmt.Errorf("partition %d offset %d (connector %q): decode checkpoint: %w", p, km.Offset, key, err)
				}
				found[key] = cp
			}
			if km.Offset+1 >= end {
				return nil
			}
		case cerr, ok := <-pc.Errors():
			if ok {
				return fmt.Errorf("partition %d: %w", p, cerr.Err)
			}
		case <-ctx.Done():
			return ctx.Err()
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
	delete(s.gone, cp.Connector)
	s.mu.Unlock()
	return nil
}
