package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// openTestStream opens a stream on the test broker whose producer connects
// through dial.
func openTestStream(t testing.TB, values map[string]any) *Stream {
	t.Helper()
	brokers := servicetest.Kafka(t)
	v := map[string]any{"brokers": []any{brokers[0]}}
	for k, x := range values {
		v[k] = x
	}
	s := New()
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

// cutter stands between the producer and the broker: cut closes every
// connection and refuses new ones until restore.
type cutter struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
	dials int
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	down := c.down
	c.dials++
	c.mu.Unlock()
	if down {
		return nil, fmt.Errorf("dial %s: connection refused (cut)", addr)
	}
	nc, err := dialNet(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conns = append(c.conns, nc)
	c.mu.Unlock()
	return nc, nil
}

// dialNet connects as the producer does by default.
func dialNet(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for _, nc := range c.conns {
		nc.Close()
	}
	c.conns = nil
}

func (c *cutter) restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = false
}

// readAll reads n messages of topic from the beginning.
func readAll(t *testing.T, s *Stream, topic string, n int) []*message.Message {
	t.Helper()
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*message.Message
	timeout := time.After(60 * time.Second)
	for len(out) < n {
		select {
		case m := <-ch:
			m.Ack()
			out = append(out, m)
		case <-timeout:
			t.Fatalf("read %d of %d messages in 60s", len(out), n)
		}
	}
	// Anything more is a duplicate.
	select {
	case m := <-ch:
		t.Fatalf("read %s beyond the %d published", m.UUID, n)
	case <-time.After(time.Second):
	}
	return out
}

// checkOnceInOrder checks that msgs hold ev-0 to ev-(n-1) once each, and
// the events of each key in the order they were published.
func checkOnceInOrder(t *testing.T, msgs []*message.Message, n int) {
	t.Helper()
	seen := map[int]bool{}
	last := map[string]int{}
	for _, m := range msgs {
		i, err := strconv.Atoi(strings.TrimPrefix(m.UUID, "ev-"))
		if err != nil || i < 0 || i >= n {
			t.Fatalf("read unknown message %q", m.UUID)
		}
		if seen[i] {
			t.Fatalf("read %s twice", m.UUID)
		}
		seen[i] = true
		key := m.Metadata.Get(core.MetadataKey)
		if prev, ok := last[key]; ok && i < prev {
			t.Fatalf("read %s after ev-%d: key %s out of order", m.UUID, prev, key)
		}
		last[key] = i
	}
}

func eventMessages(from, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		e := core.Event{
			ID: fmt.Sprintf("ev-%d", from+i), Source: "tributary/test", SpecVersion: core.SpecVersion,
			Type: "com.example.thing.happened.v1", Data: []byte(fmt.Sprintf(`{"n":%d}`, from+i)),
			PartitionKey: fmt.Sprintf("key-%d", (from+i)%11),
		}
		msgs[i] = e.ToMessage()
	}
	return msgs
}

// TestProducerRidesOutCutConnections cuts the producer's connections twice
// while events are published: every call succeeds, and every event is
// stored once, in order per key (a batch whose answer the cut lost is sent
// again with its sequence numbers, and the broker keeps one copy).
func TestProducerRidesOutCutConnections(t *testing.T) {
	s := openTestStream(t, map[string]any{"topic_partitions": 3})
	c := &cutter{}
	prod := s.conn.pub.prod
	prod.mu.Lock()
	prod.dial = c.dial
	prod.mu.Unlock()
	topic := "cut-" + watermill.NewShortUUID()
	pub := s.Publisher().(*Publisher)

	const calls, perCall = 60, 50
	errs := make(chan error, calls)
	for i := range calls {
		switch i {
		case 15, 40:
			c.cut()
		case 20, 45:
			c.restore()
		}
		if err := pub.PublishAsync(context.Background(), topic, eventMessages(i*perCall, perCall), func(err error) { errs <- err }); err != nil {
			t.Fatalf("publish call %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond) // a steady trickle, so the cuts land mid-stream
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	c.mu.Lock()
	dials := c.dials
	c.mu.Unlock()
	if dials < 3 {
		t.Fatalf("%d dials: the cuts did not reach the producer", dials)
	}
	checkOnceInOrder(t, readAll(t, s, topic, calls*perCall), calls*perCall)
}

// TestProducerRenewsIDAfterSequenceError makes the producer skip sequence
// numbers of a partition, as after lost broker state: the broker refuses the
// batch as out of order, and the producer takes a new producer id and
// stores it, and what follows, once and in order.
func TestProducerRenewsIDAfterSequenceError(t *testing.T) {
	s := openTestStream(t, map[string]any{"topic_partitions": 1})
	topic := "seq-" + watermill.NewShortUUID()
	pub := s.Publisher()
	if err := pub.Publish(topic, eventMessages(0, 10)...); err != nil {
		t.Fatalf("publish: %v", err)
	}
	prod := s.conn.pub.prod
	prod.mu.Lock()
	pid := prod.pid
	prod.topics[topic][0].nextSeq += 5
	prod.mu.Unlock()
	if err := pub.Publish(topic, eventMessages(10, 10)...); err != nil {
		t.Fatalf("publish after the gap: %v", err)
	}
	if err := pub.Publish(topic, eventMessages(20, 10)...); err != nil {
		t.Fatalf("publish after the new id: %v", err)
	}
	prod.mu.Lock()
	renewed := prod.pid != pid
	prod.mu.Unlock()
	if !renewed {
		t.Fatalf("producer id %d kept after an out-of-order sequence", pid)
	}
	checkOnceInOrder(t, readAll(t, s, topic, 30), 30)
}

// TestProducerRetriesWhenToldToRetry answers the first produce requests
// with a retriable error although the broker stored them: the producer
// sends the same batches again (after looking the leader up again when told
// it is not the leader), which the broker recognises by their sequence
// numbers, so every event is stored once and in order.
func TestProducerRetriesWhenToldToRetry(t *testing.T) {
	for _, tc := range []struct {
		name string
		code sarama.KError
	}{
		{name: "not the leader", code: sarama.ErrNotLeaderForPartition},
		{name: "fewer replicas after append", code: sarama.ErrNotEnoughReplicasAfterAppend},
		{name: "timed out", code: sarama.ErrRequestTimedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStream(t, map[string]any{"topic_partitions": 3})
			var mu sync.Mutex
			lies := 3
			prod := s.conn.pub.prod
			prod.mu.Lock()
			prod.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := dialNet(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return &lyingConn{Conn: nc, mu: &mu, lies: &lies, code: tc.code}, nil
			}
			prod.mu.Unlock()
			topic := "lied-" + watermill.NewShortUUID()
			const n = 600
			if err := s.Publisher().Publish(topic, eventMessages(0, n)...); err != nil {
				t.Fatalf("publish: %v", err)
			}
			mu.Lock()
			left := lies
			mu.Unlock()
			if left != 0 {
				t.Fatalf("%d rewritten answers left: the producer sent fewer requests than expected", left)
			}
			checkOnceInOrder(t, readAll(t, s, topic, n), n)
		})
	}
}

// TestInitProducerIDWaitsForCoordinator: a fresh cluster answers "still
// loading" to the first producer id requests; opening waits for the id
// rather than failing, and a lasting error still fails.
func TestInitProducerIDWaitsForCoordinator(t *testing.T) {
	tests := []struct {
		name    string
		answers []sarama.KError
		wantErr error
	}{
		{"loading then ready", []sarama.KError{sarama.ErrOffsetsLoadInProgress, sarama.ErrConsumerCoordinatorNotAvailable, sarama.ErrNoError}, nil},
		{"not retriable", []sarama.KError{sarama.ErrClusterAuthorizationFailed}, sarama.ErrClusterAuthorizationFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := sarama.NewMockBroker(t, 1)
			defer b.Close()
			var seq []any
			for _, e := range tc.answers {
				seq = append(seq, sarama.NewMockInitProducerIDResponse(t).SetError(e).SetProducerID(7).SetProducerEpoch(1))
			}
			b.SetHandlerByMap(map[string]sarama.MockResponse{
				"MetadataRequest":       sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()).SetController(b.BrokerID()),
				"InitProducerIDRequest": sarama.NewMockSequence(seq...),
			})
			sc := sarama.NewConfig()
			sc.Version = sarama.V2_0_0_0
			sc.ApiVersionsRequest = false
			client, err := sarama.NewClient([]string{b.Addr()}, sc)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			resp, err := initProducerID(context.Background(), client)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("initProducerID = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || resp.ProducerID != 7 {
				t.Fatalf("initProducerID = %+v, %v; want producer id 7", resp, err)
			}
		})
	}
}
