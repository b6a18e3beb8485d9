package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// seqSource emits changes numbered from its checkpoint on; its position is
// the change number. It records acks.
type seqSource struct {
	total   int
	batch   int // changes per Read; 10 when 0
	failAt  int // Read returns an error once, at this number (0: never)
	fatalAt int

	mu     sync.Mutex
	next   int
	acks   []int
	opens  []string
	closed int
	failed bool
}

func (s *seqSource) Configure(core.Config) error { return nil }

func (s *seqSource) Open(_ context.Context, _ core.Env, from core.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = 1
	if !from.IsZero() {
		n, err := strconv.Atoi(string(from.Data))
		if err != nil {
			return core.Fatal(err)
		}
		s.next = n + 1
	}
	s.opens = append(s.opens, from.String())
	return nil
}

func (s *seqSource) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	n := s.next
	if s.failAt != 0 && n == s.failAt && !s.failed {
		s.failed = true
		s.mu.Unlock()
		return nil, errors.New("connection reset")
	}
	if s.fatalAt != 0 && n == s.fatalAt {
		s.mu.Unlock()
		return nil, core.Fatal(errors.New("table dropped"))
	}
	if n > s.total {
		s.mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	size := s.batch
	if size == 0 {
		size = 10
	}
	end := min(n+size-1, s.total)
	if s.failAt != 0 && !s.failed && s.failAt > n {
		end = min(end, s.failAt-1)
	}
	var out []core.Change
	for i := n; i <= end; i++ {
		out = append(out, core.Change{
			Op:       core.OpCreate,
			Key:      map[string]any{"id": i},
			After:    map[string]any{"id": i},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i))},
		})
	}
	s.next = end + 1
	s.mu.Unlock()
	return out, nil
}

func (s *seqSource) Ack(_ context.Context, pos core.Position) error {
	n, _ := strconv.Atoi(string(pos.Data))
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) > 0 && n <= s.acks[len(s.acks)-1] {
		return fmt.Errorf("ack %d out of order after %d", n, s.acks[len(s.acks)-1])
	}
	s.acks = append(s.acks, n)
	return nil
}

func (s *seqSource) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

func (s *seqSource) lastAck() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) == 0 {
		return 0
	}
	return s.acks[len(s.acks)-1]
}

// mapper emits one "test.created" event per change, or a failure for ids
// divisible by failEvery.
func mapper(connector string, failEvery int) runtime.Mapper {
	return runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		id := ch.After["id"].(int)
		if failEvery > 0 && id%failEvery == 0 {
			return []runtime.Output{{Rule: "r", Err: errors.New("boom"), Reason: "rule_error", Data: map[string]any{"id": id}}}
		}
		data, _ := json.Marshal(ch.After)
		return []runtime.Output{{Rule: "r", Event: &core.Event{
			ID: core.EventID(connector, ch.Position, "r"), Source: "/t", SpecVersion: core.SpecVersion,
			Type: "test.created", Data: data, PartitionKey: strconv.Itoa(id),
		}}}
	})
}

func startRuntime(t *testing.T, st *memstream.Stream, conns ...runtime.Connector) (*runtime.Runtime, func()) {
	t.Helper()
	for i := range conns {
		conns[i].Retry = runtime.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}
	}
	return runWith(t, runtime.Options{Stream: st, Connectors: conns})
}

// runWith runs a runtime with opts (a temporary state directory and a 5s
// shutdown unless set) until the returned stop, which fails the test if
// Run returns an error.
func runWith(t *testing.T, opts runtime.Options) (*runtime.Runtime, func()) {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 5 * time.Second
	}
	rt, err := runtime.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	return rt, func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeliversAndCommitsInOrder(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 500}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 500 })
	stop()
	msgs := st.Messages("test.created")
	if len(msgs) != 500 {
		t.Fatalf("got %d events, want 500", len(msgs))
	}
	for i, m := range msgs {
		var d map[string]int
		if err := json.Unmarshal(m.Payload, &d); err != nil || d["id"] != i+1 {
			t.Fatalf("event %d: payload %s, want id %d", i, m.Payload, i+1)
		}
	}
	cp, ok, _ := st.Checkpoints().Load(context.Background(), "orders")
	if !ok || string(cp.Position.Data) != "500" {
		t.Fatalf("checkpoint = %+v, want position 500", cp)
	}
	if s := rt.Status().Connectors[0]; s.State != runtime.StateStopped || s.EventsEmitted != 500 {
		t.Fatalf("status = %+v", s)
	}
}

func TestFailuresGoToDeadLetter(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 30}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 10)})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 30 })
	stop()
	if n := len(st.Messages("test.created")); n != 27 {
		t.Fatalf("got %d events, want 27", n)
	}
	dl := st.Messages("tributary.deadletter")
	if len(dl) != 3 {
		t.Fatalf("got %d dead letters, want 3", len(dl))
	}
	var rec runtime.DeadLetter
	if err := json.Unmarshal(dl[0].Payload, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Rule != "r" || rec.Reason != "rule_error" || rec.Error != "boom" || rec.Connector != "orders" {
		t.Fatalf("dead letter = %+v", rec)
	}
	var ch core.Change
	if err := json.Unmarshal(rec.Change, &ch); err != nil || string(ch.Position.Data) != "10" {
		t.Fatalf("dead letter change = %s (%v)", rec.Change, err)
	}
	if dl[0].Metadata.Get(core.HeaderType) != runtime.DeadLetterType {
		t.Fatalf("dead letter type = %q", dl[0].Metadata.Get(core.HeaderType))
	}
}

func TestReadErrorReopensFromCheckpoint(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 40, failAt: 25}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 40 })
	stop()
	src.mu.Lock()
	opens := append([]string(nil), src.opens...)
	src.mu.Unlock()
	if len(opens) != 2 || opens[0] != "none" || opens[1] != "v1:24" {
		t.Fatalf("opens = %v, want [none v1:24]", opens)
	}
	seen := map[string]bool{}
	for _, m := range st.Messages("test.created") {
		seen[m.UUID] = true
	}
	if len(seen) != 40 {
		t.Fatalf("got %d distinct events, want 40", len(seen))
	}
}

func TestFatalErrorStopsOnlyThatConnector(t *testing.T) {
	st := memstream.New()
	bad := &seqSource{total: 100, fatalAt: 11}
	good := &seqSource{total: 100}
	rt, stop := startRuntime(t, st,
		runtime.Connector{Name: "bad", Source: bad, Mapper: mapper("bad", 0)},
		runtime.Connector{Name: "good", Source: good, Mapper: mapper("good", 0)},
	)
	waitFor(t, "bad failed", func() bool { return rt.Status().Connectors[0].State == runtime.StateFailed })
	waitFor(t, "good done", func() bool { return good.lastAck() == 100 })
	st0 := rt.Status()
	stop()
	if st0.Connectors[1].State != runtime.StateRunning {
		t.Fatalf("good connector state = %s", st0.Connectors[1].State)
	}
	if st0.Ready {
		t.Fatal("runtime ready with a failed connector")
	}
	if got := st0.Connectors[0].Error; got == "" {
		t.Fatal("failed connector has no error in status")
	}
	if bad.lastAck() != 10 {
		t.Fatalf("bad connector acked %d, want 10", bad.lastAck())
	}
}

func TestResumeAfterRestart(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 20}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	waitFor(t, "ack 20", func() bool { return src.lastAck() == 20 })
	stop()

	st2 := memstream.New()
	cp, _, _ := st.Checkpoints().Load(context.Background(), "orders")
	if err := st2.Checkpoints().Save(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	src2 := &seqSource{total: 30}
	_, stop2 := startRuntime(t, st2, runtime.Connector{Name: "orders", Source: src2, Mapper: mapper("orders", 0)})
	waitFor(t, "ack 30", func() bool { return src2.lastAck() == 30 })
	stop2()
	if n := len(st2.Messages("test.created")); n != 10 {
		t.Fatalf("second run emitted %d events, want 10 (21..30)", n)
	}
}

// TestDeadLetterWriteFailureStopsConnector: when the dead-letter topic keeps
// refusing writes, the connector stops (fatal) instead of losing the record,
// and its checkpoint never passes the change that could not be
// dead-lettered.
func TestDeadLetterWriteFailureStopsConnector(t *testing.T) {
	st := memstream.New()
	st.FailTopic("tributary.deadletter", errors.New("disk full"))
	src := &seqSource{total: 30}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 10)})
	waitFor(t, "connector failed", func() bool { return rt.Status().Connectors[0].State == runtime.StateFailed })
	status := rt.Status().Connectors[0]
	stop()
	if !strings.Contains(status.Error, "dead-letter") {
		t.Fatalf("status error = %q, want it to name the dead-letter write", status.Error)
	}
	if got := src.lastAck(); got >= 10 {
		t.Fatalf("source acked %d, past change 10 whose dead letter was never written", got)
	}
	cp, ok, _ := st.Checkpoints().Load(context.Background(), "orders")
	if ok {
		if n, _ := strconv.Atoi(string(cp.Position.Data)); n >= 10 {
			t.Fatalf("checkpoint %d passed the failed change 10", n)
		}
	}
}

// unreachableStream is a memstream whose Ping always fails.
type unreachableStream struct {
	*memstream.Stream
	pings atomic.Int64
}

func (s *unreachableStream) Ping(context.Context) error {
	s.pings.Add(1)
	return errors.New("broker unreachable")
}

// trickleSource emits one change every millisecond while flow is set.
type trickleSource struct {
	flow atomic.Bool
	next int
}

func (s *trickleSource) Configure(core.Config) error                         { return nil }
func (s *trickleSource) Open(context.Context, core.Env, core.Position) error { return nil }
func (s *trickleSource) Ack(context.Context, core.Position) error            { return nil }
func (s *trickleSource) Close(context.Context) error                         { return nil }

func (s *trickleSource) Read(ctx context.Context) ([]core.Change, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if s.flow.Load() {
			s.next++
			return []core.Change{{
				Op: core.OpCreate, Key: map[string]any{"id": s.next}, After: map[string]any{"id": s.next},
				Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(s.next))},
			}}, nil
		}
	}
}

// TestPublishesStandInForPings checks that an idle stream is pinged, and
// that publishes that succeed count as its health check instead.
func TestPublishesStandInForPings(t *testing.T) {
	st := &unreachableStream{Stream: memstream.New()}
	src := &trickleSource{}
	rt, stop := runWith(t, runtime.Options{
		Stream:       st,
		Connectors:   []runtime.Connector{{Name: "orders", Source: src, Mapper: mapper("orders", 0)}},
		PingInterval: 20 * time.Millisecond,
	})
	defer stop()
	waitFor(t, "the idle stream pinged and shown unreachable", func() bool {
		return rt.Status().Stream.State == "unreachable" && st.pings.Load() > 0
	})
	src.flow.Store(true)
	waitFor(t, "successful publishes showing the stream running", func() bool {
		return rt.Status().Stream.State == "running"
	})
}
