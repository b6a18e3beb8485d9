package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// oneKeyMapper emits one "test.created" event per change, every one with
// the same partition key, so that all of them must keep their order.
func oneKeyMapper(connector string) runtime.Mapper {
	return runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		data, _ := json.Marshal(ch.After)
		return []runtime.Output{{Rule: "r", Event: &core.Event{
			ID: core.EventID(connector, ch.Position, "r"), Source: "/t", SpecVersion: core.SpecVersion,
			Type: "test.created", Data: data, PartitionKey: "order-1",
		}}}
	})
}

// ids returns the "id" of each message's payload, in stored order.
func ids(t *testing.T, msgs []*message.Message) []int {
	t.Helper()
	out := make([]int, 0, len(msgs))
	for _, m := range msgs {
		var d map[string]int
		if err := json.Unmarshal(m.Payload, &d); err != nil {
			t.Fatalf("payload %s: %v", m.Payload, err)
		}
		out = append(out, d["id"])
	}
	return out
}

// checkSequence fails unless got is exactly want[0], want[1], ...
func checkSequence(t *testing.T, got, want []int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("stored %d events, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d on the stream is id %d, want %d (stored order %v)", i, got[i], want[i], got)
		}
	}
}

func upTo(n int, skip func(int) bool) []int {
	var out []int
	for i := 1; i <= n; i++ {
		if skip == nil || !skip(i) {
			out = append(out, i)
		}
	}
	return out
}

// TestPublishFailuresAreRetried: publishes that fail are retried, and no
// later event of the same key overtakes them on the stream.
func TestPublishFailuresAreRetried(t *testing.T) {
	st := memstream.New()
	st.FailNext(5, nil)
	src := &seqSource{total: 300, batch: 1}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: oneKeyMapper("orders")})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 300 })
	status := rt.Status().Connectors[0]
	stop()
	checkSequence(t, ids(t, st.Messages("test.created")), upTo(300, nil))
	if status.Errors < 5 {
		t.Fatalf("status errors = %d, want at least 5 publish errors counted", status.Errors)
	}
}

// syncOnly hides the memstream publisher's PublishAsync, so that the
// runtime drives it through its adapter for plain watermill publishers. It
// fails the calls numbered in fail and records how many calls per topic ran
// at once.
type syncOnly struct {
	*memstream.Stream
	calls   atomic.Int64
	fail    map[int64]bool
	mu      sync.Mutex
	running map[string]int
	maxRun  int
}

func (s *syncOnly) Publisher() message.Publisher { return syncPub{s} }

type syncPub struct{ s *syncOnly }

func (p syncPub) Publish(topic string, msgs ...*message.Message) error {
	p.s.mu.Lock()
	p.s.running[topic]++
	p.s.maxRun = max(p.s.maxRun, p.s.running[topic])
	p.s.mu.Unlock()
	defer func() {
		p.s.mu.Lock()
		p.s.running[topic]--
		p.s.mu.Unlock()
	}()
	if p.s.fail[p.s.calls.Add(1)] {
		return errors.New("broker busy")
	}
	return p.s.Stream.Publisher().Publish(topic, msgs...)
}

func (syncPub) Close() error { return nil }

// TestPlainPublisherKeepsKeyOrder: a stream without PublishAsync never
// publishes one topic's events concurrently, and its failures are retried
// without later events overtaking them.
func TestPlainPublisherKeepsKeyOrder(t *testing.T) {
	st := &syncOnly{Stream: memstream.New(), fail: map[int64]bool{3: true, 4: true, 40: true, 41: true, 90: true}, running: map[string]int{}}
	src := &seqSource{total: 200, batch: 1}
	_, stop := runWith(t, runtime.Options{
		Stream:     st,
		Connectors: []runtime.Connector{{Name: "orders", Source: src, Mapper: oneKeyMapper("orders"), Retry: runtime.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}}},
	})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 200 })
	stop()
	checkSequence(t, ids(t, st.Messages("test.created")), upTo(200, nil))
	if st.maxRun != 1 {
		t.Fatalf("up to %d publish calls ran at once on one topic, want 1", st.maxRun)
	}
}

// tooLarge refuses events whose id is a multiple of 7, as a broker refuses
// a record above its size limit.
func tooLarge(_ string, m *message.Message) error {
	var d map[string]int
	if json.Unmarshal(m.Payload, &d) == nil && d["id"]%7 == 0 {
		return errors.New("MESSAGE_TOO_LARGE")
	}
	return nil
}

// TestRefusedEventGoesToDeadLetter: an event the stream refuses for good
// goes to the dead-letter topic with the stream's reason, the events beside
// it in its batch are published in order, and the connector moves on.
func TestRefusedEventGoesToDeadLetter(t *testing.T) {
	st := memstream.New()
	st.Refuse(tooLarge)
	src := &seqSource{total: 100, batch: 10}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: oneKeyMapper("orders")})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 100 })
	status := rt.Status().Connectors[0]
	stop()
	refused := func(i int) bool { return i%7 == 0 }
	checkSequence(t, ids(t, st.Messages("test.created")), upTo(100, refused))
	dl := st.Messages("tributary.deadletter")
	if len(dl) != 14 {
		t.Fatalf("got %d dead letters, want 14", len(dl))
	}
	for i, m := range dl {
		var rec runtime.DeadLetter
		if err := json.Unmarshal(m.Payload, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Reason != runtime.ReasonPublishRefused || !strings.Contains(rec.Error, "MESSAGE_TOO_LARGE") || rec.EventType != "test.created" {
			t.Fatalf("dead letter %d = %+v", i, rec)
		}
		var data map[string]int
		if err := json.Unmarshal(mustJSON(t, rec.Data), &data); err != nil || data["id"] != 7*(i+1) {
			t.Fatalf("dead letter %d carries data %v, want the refused event's (id %d)", i, rec.Data, 7*(i+1))
		}
		var ch core.Change
		if err := json.Unmarshal(rec.Change, &ch); err != nil || string(ch.Position.Data) != strconv.Itoa(7*(i+1)) {
			t.Fatalf("dead letter %d change = %s (%v)", i, rec.Change, err)
		}
	}
	if status.DeadLettered != 14 || status.EventsEmitted != 86 {
		t.Fatalf("status counts dead_lettered %d, events_emitted %d; want 14 and 86", status.DeadLettered, status.EventsEmitted)
	}
	cp, _, _ := st.Checkpoints().Load(context.Background(), "orders")
	if string(cp.Position.Data) != "100" {
		t.Fatalf("checkpoint %s, want 100", cp.Position.Data)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusedEventCanStopConnector: with on_publish_error: stop, a refused
// event stops the connector before it, and the checkpoint stays behind it.
func TestRefusedEventCanStopConnector(t *testing.T) {
	st := memstream.New()
	st.Refuse(tooLarge)
	src := &seqSource{total: 30, batch: 1}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: oneKeyMapper("orders"), OnPublishError: runtime.OnPublishErrorStop})
	waitFor(t, "connector failed", func() bool { return rt.Status().Connectors[0].State == runtime.StateFailed })
	status := rt.Status().Connectors[0]
	stop()
	if !strings.Contains(status.Error, "on_publish_error: stop") || !strings.Contains(status.Error, "MESSAGE_TOO_LARGE") {
		t.Fatalf("status error = %q, want the refusal and the option named", status.Error)
	}
	if got := src.lastAck(); got >= 7 {
		t.Fatalf("source acked %d, past the refused event 7", got)
	}
	if n := len(st.Messages("tributary.deadletter")); n != 0 {
		t.Fatalf("%d dead letters written with on_publish_error: stop", n)
	}
}

// lateRefusal is a stream that refuses every event for good, answering
// after a delay; sent is closed when the first publish is handed over.
type lateRefusal struct {
	*memstream.Stream
	sent chan struct{}
	once sync.Once
}

func (s *lateRefusal) Publisher() message.Publisher { return lateRefusalPub{s} }

type lateRefusalPub struct{ s *lateRefusal }

func (p lateRefusalPub) Publish(string, ...*message.Message) error { return errors.New("unused") }
func (p lateRefusalPub) Close() error                              { return nil }

func (p lateRefusalPub) PublishAsync(_ context.Context, _ string, _ []*message.Message, done func(error)) error {
	p.s.once.Do(func() { close(p.s.sent) })
	go func() {
		time.Sleep(200 * time.Millisecond)
		done(core.Permanent(errors.New("MESSAGE_TOO_LARGE")))
	}()
	return nil
}

// TestRefusalDuringShutdownEndsDrain: a refusal that stops the connector
// while the sidecar is draining for shutdown ends the drain at once
// instead of holding it to the shutdown deadline.
func TestRefusalDuringShutdownEndsDrain(t *testing.T) {
	st := &lateRefusal{Stream: memstream.New(), sent: make(chan struct{})}
	src := &seqSource{total: 1}
	_, stop := runWith(t, runtime.Options{
		Stream:     st,
		Connectors: []runtime.Connector{{Name: "orders", Source: src, Mapper: oneKeyMapper("orders"), OnPublishError: runtime.OnPublishErrorStop}},
	})
	<-st.sent
	// Run returns an error, failing the test, if the drain waits for the
	// shutdown deadline.
	stop()
}
