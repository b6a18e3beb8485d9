package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Record describes the Kafka record a consumed message came from. It is in
// the message's context; see RecordFromContext.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       []byte
}

type recordKey struct{}

// RecordFromContext returns the record a consumed message came from.
func RecordFromContext(ctx context.Context) (Record, bool) {
	r, ok := ctx.Value(recordKey{}).(Record)
	return r, ok
}

// subscriber reads topics as its SubscribeOptions say. With a group, each
// Subscribe joins a sarama consumer group and offsets are committed after
// Ack; without one, each Subscribe reads every partition from the start
// point and commits nothing.
//
// Within a partition, with SubscribeOptions.Window 0 or 1, messages are
// delivered one at a time: the next one comes after the previous is acked,
// and a nacked message is delivered again before anything after it. With a
// larger Window, up to Window messages of a partition are delivered before
// the first of them is acked; acks may come in any order, the group's
// offset is marked only past the run of acked messages from the start (the
// low watermark), and a nack delivers the message again, then those after
// it that were delivered but not acked.
type subscriber struct {
	c    *conn
	opts core.SubscribeOptions

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

var (
	_ message.Subscriber           = (*subscriber)(nil)
	_ message.SubscribeInitializer = (*subscriber)(nil)
	_ core.TopicsSubscriber        = (*subscriber)(nil)
)

func newSubscriber(c *conn, opts core.SubscribeOptions) *subscriber {
	return &subscriber{c: c, opts: opts, closing: make(chan struct{})}
}

// SubscribeInitialize creates topic when it is missing (and allowed).
func (s *subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.c.topics.ensure(ctx, topic, false)
}

// Subscribe returns the messages of topic. The channel is closed when ctx
// ends or the subscriber is closed. The topic is created when missing (and
// allowed).
func (s *subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return s.subscribeTracked(ctx, topic, false)
}

// subscribeTracked subscribes to topic (from its stored records when
// stored) as a subscription the subscriber tracks.
func (s *subscriber) subscribeTracked(ctx context.Context, topic string, stored bool) (<-chan *message.Message, error) {
	var out chan *message.Message
	err := s.track(fmt.Sprintf("kafka topic %q", topic), func() (finished chan struct{}, err error) {
		out, finished, err = s.subscribe(ctx, topic, stored)
		return finished, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// track runs start as one of the subscriber's subscriptions, unless the
// subscriber is closed: Close waits for the channel start returns to be
// closed, also when start fails. what names the subscription in errors.
func (s *subscriber) track(what string, start func() (finished chan struct{}, err error)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("subscribe to %s: subscriber %w", what, ErrClosed)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	finished, err := start()
	if err != nil {
		if finished != nil {
			<-finished
		}
		s.wg.Done()
		return err
	}
	go func() {
		<-finished
		s.wg.Done()
	}()
	return nil
}

// SubscribeTopics is Subscribe for several topics, read by one member of
// the subscriber's group: the group rebalances once for all of them. Only a
// subscriber with a group has it.
func (s *subscriber) SubscribeTopics(ctx context.Context, topics []string) (map[string]<-chan *message.Message, error) {
	if s.opts.Group == "" {
		return nil, fmt.Errorf("subscribe to kafka topics %q: only a consumer group subscribes to several topics as one member; subscribe to each without a group", topics)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("subscribe consumer group %q: no topics", s.opts.Group)
	}
	if err := s.checkWindow(fmt.Sprintf("kafka topics %q", topics)); err != nil {
		return nil, err
	}
	chans := make(map[string]<-chan *message.Message, len(topics))
	err := s.track(fmt.Sprintf("kafka topics %q", topics), func() (chan struct{}, error) {
		for _, topic := range topics {
			if err := s.c.topics.ensure(ctx, topic, false); err != nil {
				return nil, fmt.Errorf("subscribe to kafka topic %q: %w", topic, err)
			}
		}
		ds := make(map[string]*deliverer, len(topics))
		for _, topic := range topics {
			if _, dup := ds[topic]; dup {
				continue
			}
			out := make(chan *message.Message)
			ds[topic] = &deliverer{out: out, subCtx: ctx, window: max(s.opts.Window, 1)}
			chans[topic] = out
		}
		runCtx, cancel := s.runContext(ctx)
		finished, err := s.consumeGroup(runCtx, slices.Sorted(maps.Keys(ds)), ds)
		if err != nil {
			cancel()
		}
		return finished, err
	})
	if err != nil {
		return nil, err
	}
	return chans, nil
}

// checkWindow refuses a negative SubscribeOptions.Window for the
// subscription named what.
func (s *subscriber) checkWindow(what string) error {
	if s.opts.Window < 0 {
		return fmt.Errorf("subscribe to %s: window %d is negative; use 0 or 1 for one message at a time, more to deliver several before the first is acked", what, s.opts.Window)
	}
	return nil
}

// runContext returns a context that ends when ctx ends or the subscriber
// closes.
func (s *subscriber) runContext(ctx context.Context) (context.Context, context.CancelFunc) {
	runCtx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.closing:
		case <-runCtx.Done():
		}
		cancel()
	}()
	return runCtx, cancel
}

// SubscribeStored is Subscribe bounded to what topic holds when it is
// called: each partition is read from the start position up to its high
// watermark at that moment, and the channel is closed once every partition's
// last record is acked (or ctx ends, or the subscriber closes). `tributary
// events tail --no-follow` reads with it. Only a subscriber without a group
// has it.
func (s *subscriber) SubscribeStored(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.opts.Group != "" {
		return nil, fmt.Errorf("subscribe to the stored records of kafka topic %q: consumer group %q reads on from its committed offsets; subscribe without a group", topic, s.opts.Group)
	}
	return s.subscribeTracked(ctx, topic, true)
}

// subscribe starts reading topic, up to each partition's high watermark
// when stored is set. finished is closed once every goroutine of the
// subscription has ended; it may be non-nil along with an error.
func (s *subscriber) subscribe(ctx context.Context, topic string, stored bool) (out chan *message.Message, finished chan struct{}, err error) {
	if err := s.checkWindow(fmt.Sprintf("kafka topic %q", topic)); err != nil {
		return nil, nil, err
	}
	if err := s.c.topics.ensure(ctx, topic, false); err != nil {
		return nil, nil, fmt.Errorf("subscribe to kafka topic %q: %w", topic, err)
	}
	runCtx, cancel := s.runContext(ctx)
	out = make(chan *message.Message)
	d := &deliverer{out: out, subCtx: ctx, window: max(s.opts.Window, 1)}
	if s.opts.Group != "" {
		finished, err = s.consumeGroup(runCtx, []string{topic}, map[string]*deliverer{topic: d})
	} else {
		finished, err = s.consumePartitions(runCtx, topic, d, stored)
	}
	if err != nil {
		cancel()
		return nil, finished, err
	}
	return out, finished, nil
}

// Close ends every subscription and waits for their goroutines. It is safe
// to call twice.
func (s *subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.wg.Wait()
	s.c.forget(s)
	return nil
}

// startOffset is the offset of topic/partition where a reading without a
// committed offset starts.
func (s *subscriber) startOffset(client sarama.Client, topic string, partition int32) (int64, error) {
	switch s.opts.From {
	case core.FromBeginning:
		return sarama.OffsetOldest, nil
	case core.FromTime:
		off, err := client.GetOffset(topic, partition, s.opts.Since.UnixMilli())
		if err != nil {
			return 0, fmt.Errorf("find offset of kafka topic %q partition %d at %s: %w", topic, partition, s.opts.Since.Format(time.RFC3339), err)
		}
		if off >= 0 {
			return off, nil
		}
		// No record at or after Since: start at the end.
		fallthrough
	default:
		off, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("find end offset of kafka topic %q partition %d: %w", topic, partition, err)
		}
		return off, nil
	}
}

// consumePartitions reads every partition of topic without a group; when
// stored is set, each only up to its high watermark at the start, and the
// subscription ends once all are read.
func (s *subscriber) consumePartitions(ctx context.Context, topic string, d *deliverer, stored bool) (chan struct{}, error) {
	client := s.c.client
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("list partitions of kafka topic %q: %w", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("consume kafka topic %q: %w", topic, err)
	}
	reads, err := s.openPartitions(ctx, consumer, topic, parts, stored)
	if err != nil {
		_ = consumer.Close()
		return nil, err
	}
	var wg, readers sync.WaitGroup
	for _, r := range reads {
		wg.Add(2)
		readers.Add(1)
		go func() {
			defer wg.Done()
			for err := range r.pc.Errors() {
				s.c.log.Warn("kafka partition consumer error", "topic", err.Topic, "partition", err.Partition, "error", err.Err)
			}
		}()
		go func() {
			defer wg.Done()
			defer readers.Done()
			r.read(ctx, d, stored)
		}()
	}
	var read chan struct{} // with stored: closed once every partition is read
	if stored {
		read = make(chan struct{})
		go func() {
			readers.Wait()
			close(read)
		}()
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-ctx.Done():
		case <-read:
		}
		for _, r := range reads {
			r.pc.AsyncClose()
		}
		wg.Wait()
		_ = consumer.Close()
		close(d.out)
	}()
	return finished, nil
}

// partitionRead is the reading of one partition by a subscription without
// a group.
type partitionRead struct {
	pc  sarama.PartitionConsumer
	end int64 // with stored: the offset after the last record to read
}

// openPartitions starts reading each of parts at the subscriber's start
// point; with stored, it leaves out the partitions that hold nothing from
// there. On error, it closes the partition consumers it started.
func (s *subscriber) openPartitions(ctx context.Context, consumer sarama.Consumer, topic string, parts []int32, stored bool) ([]partitionRead, error) {
	var reads []partitionRead
	for _, p := range parts {
		r, err := s.openPartition(ctx, consumer, topic, p, stored)
		if err != nil {
			for _, r := range reads {
				r.pc.AsyncClose()
			}
			return nil, err
		}
		if r.pc != nil {
			reads = append(reads, r)
		}
	}
	return reads, nil
}

// openPartition starts reading partition p of topic at the subscriber's
// start point, retrying while its leader moves. With stored, it also finds
// the partition's high watermark, and starts nothing (a nil pc) when no
// record lies between the two.
func (s *subscriber) openPartition(ctx context.Context, consumer sarama.Consumer, topic string, p int32, stored bool) (partitionRead, error) {
	client := s.c.client
	var r partitionRead
	err := retryLeader(ctx, client, topic, func() error {
		off, err := s.startOffset(client, topic, p)
		if err != nil {
			return err
		}
		if stored {
			if r.end, err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
				return fmt.Errorf("find end offset of kafka topic %q partition %d: %w", topic, p, err)
			}
			if off == sarama.OffsetOldest {
				if off, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
					return fmt.Errorf("find first offset of kafka topic %q partition %d: %w", topic, p, err)
				}
			}
			if off >= r.end {
				return nil // nothing stored to read
			}
		}
		if r.pc, err = consumer.ConsumePartition(topic, p, off); err != nil {
			return fmt.Errorf("consume kafka topic %q partition %d: %w", topic, p, err)
		}
		return nil
	})
	return r, err
}

// read delivers the partition's messages until ctx ends or, with stored,
// the last record to read is delivered and every delivery acked; then it
// closes the partition consumer.
func (r partitionRead) read(ctx context.Context, d *deliverer, stored bool) {
	defer r.pc.AsyncClose()
	last := int64(-1)
	if stored {
		last = r.end - 1
	}
	d.deliverAll(ctx, r.pc.Messages(), last, nil)
}

// consumeGroup joins the consumer group as one member reading topics, and
// reads the partitions it is assigned, each topic's to its deliverer in ds,
// marking each offset once its message is acked. When opts.From is FromEnd
// the subscription is in place (the group joined) before it returns.
func (s *subscriber) consumeGroup(ctx context.Context, topics []string, ds map[string]*deliverer) (chan struct{}, error) {
	sc := *s.c.sc
	// A balance strategy keeps state while it plans: each group gets one
	// of its own, or groups that join at once (a sidecar's sinks) race.
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if s.opts.From == core.FromEnd {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	what := fmt.Sprintf("kafka topic %q", topics[0])
	if len(topics) > 1 {
		what = fmt.Sprintf("kafka topics %q", topics)
	}
	client, err := sarama.NewClient(s.c.cfg.Brokers, &sc)
	if err != nil {
		return nil, fmt.Errorf("consume %s in group %q: connect: %w", what, s.opts.Group, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(s.opts.Group, client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("consume %s in group %q: %w", what, s.opts.Group, err)
	}
	h := &groupHandler{s: s, ds: ds, client: client, ready: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for err := range group.Errors() {
			s.c.log.Warn("kafka consumer group error", "group", s.opts.Group, "topics", topics, "error", err)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			err := group.Consume(ctx, topics, h)
			if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return
			}
			if err != nil {
				s.c.log.Warn("kafka consumer group session ended", "group", s.opts.Group, "topics", topics, "error", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
		}
	}()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		<-ctx.Done()
		_ = group.Close()
		wg.Wait()
		_ = client.Close()
		for _, d := range ds {
			close(d.out)
		}
	}()
	if s.opts.From == core.FromEnd {
		select {
		case <-h.ready:
		case <-ctx.Done():
			return finished, fmt.Errorf("subscribe to %s in group %q: %w", what, s.opts.Group, ctx.Err())
		}
	}
	return finished, nil
}

// groupHandler is the sarama consumer group handler of one subscription:
// ds has the deliverer of each of its topics.
type groupHandler struct {
	s         *subscriber
	ds        map[string]*deliverer
	client    sarama.Client
	ready     chan struct{}
	readyOnce sync.Once
}

// Setup positions the claimed partitions that have no committed offset at
// the subscription's start point (FromEnd, FromTime); FromBeginning needs
// nothing, since it is the group's initial offset.
func (h *groupHandler) Setup(sess sarama.ConsumerGroupSession) error {
	defer h.readyOnce.Do(func() { close(h.ready) })
	if h.s.opts.From == core.FromBeginning {
		return nil
	}
	admin, err := h.s.c.topics.clusterAdmin()
	if err != nil {
		return err
	}
	claims := sess.Claims()
	committed, err := admin.ListConsumerGroupOffsets(h.s.opts.Group, claims)
	if err != nil {
		return fmt.Errorf("fetch committed offsets of group %q: %w", h.s.opts.Group, err)
	}
	for topic, parts := range claims {
		for _, p := range parts {
			if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
				continue
			}
			off, err := h.s.startOffset(h.client, topic, p)
			if err != nil {
				return err
			}
			sess.MarkOffset(topic, p, off, "")
		}
	}
	return nil
}

// Cleanup commits the offsets marked in the ending session.
func (h *groupHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	return nil
}

// ConsumeClaim delivers a partition's messages and marks the offset after
// the run of acked messages from the start as it grows.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	d := h.ds[claim.Topic()]
	if d == nil {
		return fmt.Errorf("consumer group %q was assigned topic %q, which it does not read", h.s.opts.Group, claim.Topic())
	}
	d.deliverAll(sess.Context(), claim.Messages(), -1, func(km *sarama.ConsumerMessage) { sess.MarkMessage(km, "") })
	return nil
}

// deliverer hands records to a subscription's channel as watermill messages.
type deliverer struct {
	out    chan *message.Message
	subCtx context.Context // the Subscribe context, parent of message contexts
	window int             // most messages of a partition out before the first is acked
}

// deliverAll delivers the records of one partition that come on in, up to
// d.window of them before the first is acked, until in is closed, ctx ends
// or, when last is not negative, the record at offset last is delivered
// and every delivery acked. mark, when not nil, is told the last record of
// the run of acked records from the start whenever the run grows. A nack
// delivers the record again, and those after it that were delivered but
// not acked. deliverAll returns once every delivery's ack or nack is
// accounted for.
func (d *deliverer) deliverAll(ctx context.Context, in <-chan *sarama.ConsumerMessage, last int64, mark func(*sarama.ConsumerMessage)) {
	ctx, cancel := context.WithCancel(ctx)
	w := newWindow(d.window, mark)
	if w.Size() > 1 {
		// One goroutine watches the acks of every delivery, until
		// nothing more is sent, so that it accounts for the acks of the
		// last deliveries too.
		defer w.StartTracking()()
	}
	defer cancel()
	done := false // every record to read is read
	for {
		if ctx.Err() != nil || done && w.Empty() {
			return
		}
		km, gen, ok := w.Next()
		if !ok {
			var read <-chan *sarama.ConsumerMessage
			if !done && w.Room() {
				read = in
			}
			select {
			case km, ok = <-read:
				if !ok {
					// The partition is taken away (a rebalance) or the
					// reading ends: what is not acked goes to the next
					// reader.
					return
				}
				w.Add(km)
				done = last >= 0 && km.Offset >= last
			case <-w.Wake():
				continue
			case <-ctx.Done():
				return
			}
		}
		msg := toMessage(km)
		msgCtx, cancelMsg := context.WithCancel(context.WithValue(d.subCtx, recordKey{}, Record{
			Topic: km.Topic, Partition: km.Partition, Offset: km.Offset, Timestamp: km.Timestamp, Key: km.Key,
		}))
		msg.SetContext(msgCtx)
		select {
		case d.out <- msg:
		case <-ctx.Done():
			cancelMsg()
			return
		}
		if w.Size() == 1 {
			// One at a time: nothing to deliver until this one is acked.
			w.Sent(km.Offset, gen, msg)
			w.Watch(ctx, msg, km.Offset, gen)
			cancelMsg()
			continue
		}
		w.SentWatched(km.Offset, gen, msg, cancelMsg)
	}
}

// toMessage maps a record to a message: headers to metadata one to one, the
// value to the payload, ce_id to the UUID. A record without ce_id (written
// by another producer) gets topic-partition-offset as its UUID, and its key
// becomes ce_partitionkey when that header is absent.
func toMessage(km *sarama.ConsumerMessage) *message.Message {
	md := make(message.Metadata, len(km.Headers)+1)
	for _, h := range km.Headers {
		if h != nil {
			md[string(h.Key)] = string(h.Value)
		}
	}
	if _, ok := md[core.MetadataKey]; !ok && len(km.Key) > 0 {
		md[core.MetadataKey] = string(km.Key)
	}
	md[core.MetadataPosition] = core.StreamPosition(km.Topic, km.Partition, km.Offset)
	id := md[core.HeaderID]
	if id == "" {
		id = fmt.Sprintf("%s-%d-%d", km.Topic, km.Partition, km.Offset)
	}
	m := message.NewMessage(id, km.Value)
	m.Metadata = md
	return m
}

// retryLeader runs fn until it succeeds, fails with an error that is not
// about partition leadership, or 15 seconds pass. Right after a topic is
// created, a broker may answer "not the leader" for a moment although the
// metadata already names it.
func retryLeader(ctx context.Context, client sarama.Client, topic string, fn func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := fn()
		if err == nil || !isLeaderError(err) || time.Now().After(deadline) {
			return err
		}
		_ = client.RefreshMetadata(topic)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isLeaderError(err error) bool {
	return errors.Is(err, sarama.ErrNotLeaderForPartition) ||
		errors.Is(err, sarama.ErrLeaderNotAvailable) ||
		errors.Is(err, sarama.ErrUnknownTopicOrPartition) ||
		errors.Is(err, sarama.ErrOffsetsLoadInProgress) ||
		errors.Is(err, sarama.ErrNotCoordinatorForConsumer)
}
