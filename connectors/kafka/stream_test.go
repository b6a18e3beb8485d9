package kafka_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

func testEvent(id, key string) *core.Event {
	return &core.Event{
		ID:              id,
		Source:          "tributary/legacy_orders",
		SpecVersion:     core.SpecVersion,
		Type:            "com.example.order.accepted.v1",
		Subject:         "orders/" + key,
		Time:            time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC),
		DataContentType: "application/json",
		Data:            []byte(`{"order_id":"` + key + `"}`),
		PartitionKey:    key,
	}
}

// receive reads n messages from ch, acking each, bounded by 30 seconds.
func receive(t *testing.T, ch <-chan *message.Message, n int) []*message.Message {
	t.Helper()
	var out []*message.Message
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(out), n)
			}
			m.Ack()
			out = append(out, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages in 30s", len(out), n)
		}
	}
	return out
}

// TestStockConsumerSeesCloudEventHeaders checks what a plain Kafka consumer
// (not this package) reads: CloudEvents binary-mode headers, the data as
// value and the partition key as record key.
//
// The event is published both ways a stream takes one: as its ToMessage form
// and as it is (core.EventPublisher); the records must be the same.
func TestStockConsumerSeesCloudEventHeaders(t *testing.T) {
	brokers := servicetest.Kafka(t)
	s := openStream(t, map[string]any{"topic_partitions": 1})
	t.Run("message", func(t *testing.T) {
		checkStockConsumer(t, s, brokers, func(topic string, ev *core.Event) error {
			return s.Publisher().Publish(topic, ev.ToMessage())
		})
	})
	t.Run("event", func(t *testing.T) {
		checkStockConsumer(t, s, brokers, func(topic string, ev *core.Event) error {
			errc := make(chan error, 1)
			pub := s.Publisher().(core.EventPublisher)
			if err := pub.PublishEvents(context.Background(), topic, []*core.Event{ev}, func(err error) { errc <- err }); err != nil {
				return err
			}
			return <-errc
		})
	})
}

func checkStockConsumer(t *testing.T, s *kafka.Stream, brokers []string, publish func(topic string, ev *core.Event) error) {
	topic := newTopic("roundtrip")
	ev := testEvent("0b7c6a1e-0000-5000-8000-000000000001", "ord-42")
	ev.Time = ev.Time.Add(123456 * time.Nanosecond)
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	if err := publish(topic, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var rec *sarama.ConsumerMessage
	select {
	case rec = <-pc.Messages():
	case <-time.After(30 * time.Second):
		t.Fatal("no record within 30s")
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[string(h.Key)] = string(h.Value)
	}
	want := map[string]string{
		"ce_id":           ev.ID,
		"ce_type":         ev.Type,
		"ce_source":       ev.Source,
		"ce_specversion":  "1.0",
		"ce_subject":      ev.Subject,
		"ce_time":         "2026-05-06T07:08:09.000123456Z",
		"ce_partitionkey": "ord-42",
		"ce_traceparent":  ev.TraceParent,
		"ce_tracestate":   ev.TraceState,
		"content-type":    "application/json",
	}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, headers[k], v)
		}
	}
	if len(headers) != len(want) {
		t.Errorf("headers %v, want exactly %v", headers, want)
	}
	if string(rec.Key) != "ord-42" {
		t.Errorf("key %q, want ord-42", rec.Key)
	}
	if string(rec.Value) != string(ev.Data) {
		t.Errorf("value %q, want %q", rec.Value, ev.Data)
	}

	// And this package's subscriber turns the record back into the event.
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	m := receive(t, ch, 1)[0]
	if m.UUID != ev.ID {
		t.Errorf("UUID %q, want %q", m.UUID, ev.ID)
	}
	got, err := core.EventFromMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Type != ev.Type || got.PartitionKey != ev.PartitionKey || !got.Time.Equal(ev.Time) || string(got.Data) != string(ev.Data) ||
		got.TraceParent != ev.TraceParent || got.TraceState != ev.TraceState {
		t.Errorf("event read back as %+v, want %+v", got, ev)
	}
	rec2, ok := kafka.RecordFromContext(m.Context())
	if !ok || rec2.Topic != topic || string(rec2.Key) != "ord-42" {
		t.Errorf("record in context %+v, %v", rec2, ok)
	}
}

func TestSameKeySamePartitionInOrder(t *testing.T) {
	s := openStream(t, map[string]any{"topic_partitions": 3})
	topic := newTopic("order")
	var msgs []*message.Message
	for i := range 30 {
		ev := testEvent(core.EventID("c", core.Position{Data: []byte{byte(i)}}, "r"), "ord-7")
		msgs = append(msgs, ev.ToMessage())
	}
	if err := s.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, ch, len(msgs))
	part, _ := kafka.RecordFromContext(got[0].Context())
	for i, m := range got {
		if m.UUID != msgs[i].UUID {
			t.Fatalf("message %d is %s, want %s", i, m.UUID, msgs[i].UUID)
		}
		if r, _ := kafka.RecordFromContext(m.Context()); r.Partition != part.Partition {
			t.Fatalf("message %d on partition %d, first on %d", i, r.Partition, part.Partition)
		}
	}
}

func TestPublishAsync(t *testing.T) {
	s := openStream(t, nil)
	pub, ok := s.Publisher().(core.AsyncPublisher)
	if !ok {
		t.Fatal("publisher does not implement core.AsyncPublisher")
	}
	topic := newTopic("async")
	done := make(chan error, 3)
	for i := range 3 {
		msgs := []*message.Message{testEvent(core.EventID("c", core.Position{Data: []byte{byte(i)}}, "r"), "k").ToMessage()}
		if err := pub.PublishAsync(context.Background(), topic, msgs, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("done not called within 30s")
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := make(chan struct{}, 1)
	err := pub.PublishAsync(ctx, newTopic("async-canceled"), []*message.Message{testEvent("x", "k").ToMessage()}, func(error) { called <- struct{}{} })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("PublishAsync with a done context: %v, want context.Canceled", err)
	}
	select {
	case <-called:
		t.Fatal("done called although PublishAsync returned an error")
	default:
	}
}

func TestSubscribeFromEndAndTime(t *testing.T) {
	s := openStream(t, nil)
	topic := newTopic("from")
	pub := s.Publisher()
	old := testEvent("00000000-0000-5000-8000-00000000000a", "a").ToMessage()
	if err := pub.Publish(topic, old); err != nil {
		t.Fatal(err)
	}
	// Kafka timestamps have millisecond precision: step past the old one.
	for since := time.Now(); time.Since(since) < 5*time.Millisecond; {
		runtime.Gosched()
	}
	since := time.Now()

	tests := []struct {
		name string
		opts core.SubscribeOptions
	}{
		{name: "end", opts: core.SubscribeOptions{From: core.FromEnd}},
		{name: "end in group", opts: core.SubscribeOptions{From: core.FromEnd, Group: "g-" + newTopic("end")}},
		{name: "time", opts: core.SubscribeOptions{From: core.FromTime, Since: since}},
		{name: "time in group", opts: core.SubscribeOptions{From: core.FromTime, Since: since, Group: "g-" + newTopic("time")}},
	}
	subs := make([]<-chan *message.Message, len(tests))
	for i, tc := range tests {
		sub, err := s.Subscriber(tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if subs[i], err = sub.Subscribe(context.Background(), topic); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	fresh := testEvent("00000000-0000-5000-8000-00000000000b", "b").ToMessage()
	if err := pub.Publish(topic, fresh); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := receive(t, subs[i], 1)[0]
			if m.UUID != fresh.UUID {
				t.Fatalf("first message %s, want the fresh %s (the old one is before the start)", m.UUID, fresh.UUID)
			}
		})
	}
}

func TestCheckpointsAcrossStreams(t *testing.T) {
	values := map[string]any{"checkpoint_topic": newTopic("checkpoints")}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a := openStream(t, values).Checkpoints()
	if _, ok, err := a.Load(ctx, "legacy_orders"); err != nil || ok {
		t.Fatalf("load from an empty store: ok=%v err=%v", ok, err)
	}
	saves := []core.Checkpoint{
		{Connector: "legacy_orders", Position: core.Position{Version: 1, Data: []byte("lsn-1")}},
		{Connector: "billing_api", Position: core.Position{Version: 1, Data: []byte("cursor-9")}},
		{Connector: "legacy_orders", Position: core.Position{Version: 1, Data: []byte("lsn-2")}},
	}
	for _, cp := range saves {
		if err := a.Save(ctx, cp); err != nil {
			t.Fatalf("save: %v", err)
		}
	}
	if cp, ok, err := a.Load(ctx, "legacy_orders"); err != nil || !ok || string(cp.Position.Data) != "lsn-2" {
		t.Fatalf("load from the saving stream: %+v ok=%v err=%v", cp, ok, err)
	}

	// A second stream, as on another machine, reads the topic.
	b := openStream(t, values).Checkpoints()
	for conn, want := range map[string]string{"legacy_orders": "lsn-2", "billing_api": "cursor-9"} {
		cp, ok, err := b.Load(ctx, conn)
		if err != nil || !ok {
			t.Fatalf("load %s: ok=%v err=%v", conn, ok, err)
		}
		if string(cp.Position.Data) != want || cp.Format != core.CheckpointFormat || cp.Connector != conn || cp.Time.IsZero() {
			t.Fatalf("load %s: %+v, want position %s", conn, cp, want)
		}
	}
	if _, ok, err := b.Load(ctx, "unknown"); err != nil || ok {
		t.Fatalf("load unknown: ok=%v err=%v", ok, err)
	}
}

func TestOpenUnreachableBrokers(t *testing.T) {
	s := kafka.New()
	if err := s.Configure(core.NewConfig("stream", map[string]any{
		"brokers":      []any{"127.0.0.1:1"},
		"dial_timeout": "1s",
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := s.Open(ctx, core.Env{Name: "test"})
	if err == nil {
		t.Fatal("Open succeeded with no broker listening")
	}
	if !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error does not name the brokers: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Open returned only after its context ended: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, kafka.ErrNotOpen) {
		t.Fatalf("Ping after a failed Open: %v, want ErrNotOpen", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close after a failed Open: %v", err)
	}
}

func TestOpenBoundedByContext(t *testing.T) {
	s := kafka.New()
	// A context that is already done ends Open before any dialing.
	if err := s.Configure(core.NewConfig("stream", map[string]any{"brokers": []any{"127.0.0.1:1"}})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Open(ctx, core.Env{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open with a canceled context: %v, want context.Canceled", err)
	}
}

func TestTopicCreationNotAllowed(t *testing.T) {
	s := openStream(t, map[string]any{"create_topics": false})
	topic := newTopic("missing")
	err := s.Publisher().Publish(topic, testEvent("00000000-0000-5000-8000-00000000000c", "k").ToMessage())
	if !errors.Is(err, kafka.ErrTopicMissing) {
		t.Fatalf("publish to a missing topic: %v, want ErrTopicMissing", err)
	}
	for _, want := range []string{topic, "create_topics"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := sub.Subscribe(context.Background(), topic); !errors.Is(err, kafka.ErrTopicMissing) {
		t.Fatalf("subscribe to a missing topic: %v, want ErrTopicMissing", err)
	}
}

func TestLifecycle(t *testing.T) {
	s := kafka.New()
	if err := s.Publisher().Publish("t", message.NewMessage("x", nil)); !errors.Is(err, kafka.ErrNotOpen) {
		t.Fatalf("publish before Open: %v", err)
	}
	if _, _, err := s.Checkpoints().Load(context.Background(), "c"); !errors.Is(err, kafka.ErrNotOpen) {
		t.Fatalf("load before Open: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("close before Open: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestPingAndCloseReleaseEverything(t *testing.T) {
	servicetest.Kafka(t)
	run := func() {
		t.Helper()
		s := openStream(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		topic := newTopic("leak")
		if err := s.Publisher().Publish(topic, testEvent("00000000-0000-5000-8000-00000000000d", "k").ToMessage()); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []core.SubscribeOptions{{From: core.FromBeginning}, {From: core.FromBeginning, Group: "g-" + topic}} {
			sub, err := s.Subscriber(opts)
			if err != nil {
				t.Fatal(err)
			}
			ch, err := sub.Subscribe(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			receive(t, ch, 1)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("second close: %v", err)
		}
		if err := s.Ping(ctx); !errors.Is(err, kafka.ErrClosed) {
			t.Fatalf("ping after close: %v, want ErrClosed", err)
		}
	}
	run() // starts process-wide singletons (metrics tickers)
	before := runtime.NumGoroutine()
	run()
	deadline := time.Now().Add(15 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
