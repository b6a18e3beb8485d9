package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/metricstest"
	"github.com/tributary/tributary/core/runtime"
)

// recSink records every delivery it is handed, checks that no two Writes
// hold one key at once, and answers each delivery with answer (delivered
// when answer is nil), one after another, holding a key's later
// deliveries once one is not delivered, as core.SinkFunc does.
type recSink struct {
	answer  func(ctx context.Context, d core.Delivery) core.Result
	openErr error

	mu        sync.Mutex
	attempts  []core.Delivery
	delivered []core.Delivery
	held      map[string]bool
	overlap   []string
	calls     int
	maxCalls  int
	opens     int
	closes    int
}

func (s *recSink) Configure(core.Config) error { return nil }

func (s *recSink) Open(context.Context, core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opens++
	if s.openErr != nil {
		err := s.openErr
		s.openErr = nil
		return err
	}
	return nil
}

func (s *recSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	return nil
}

func (s *recSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	s.mu.Lock()
	if s.held == nil {
		s.held = map[string]bool{}
	}
	keys := map[string]bool{}
	for _, d := range ds {
		keys[d.Event.PartitionKey] = true
	}
	for k := range keys {
		if s.held[k] {
			s.overlap = append(s.overlap, k)
		}
		s.held[k] = true
	}
	s.calls++
	s.maxCalls = max(s.maxCalls, s.calls)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		for k := range keys {
			delete(s.held, k)
		}
		s.calls--
		s.mu.Unlock()
	}()
	out := make([]core.Result, len(ds))
	stopped := map[string]bool{}
	for i, d := range ds {
		key := d.Event.PartitionKey
		if stopped[key] || ctx.Err() != nil {
			out[i] = core.Result{Status: core.StatusRetry}
			stopped[key] = true
			continue
		}
		s.mu.Lock()
		s.attempts = append(s.attempts, d)
		s.mu.Unlock()
		r := core.Result{Status: core.StatusDelivered}
		if s.answer != nil {
			r = s.answer(ctx, d)
		}
		out[i] = r
		if r.Status == core.StatusDelivered {
			s.mu.Lock()
			s.delivered = append(s.delivered, d)
			s.mu.Unlock()
		} else {
			stopped[key] = true
		}
	}
	return out
}

func (s *recSink) deliveredIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.delivered {
		out = append(out, d.Event.ID)
	}
	return out
}

func (s *recSink) attemptsOf(id string) []core.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Delivery
	for _, d := range s.attempts {
		if d.Event.ID == id {
			out = append(out, d)
		}
	}
	return out
}

var _ core.Sink = (*recSink)(nil)

const sinkTopicPrefix = "events."

// sinkEvent returns event n of key on type typ.
func sinkEvent(typ, key string, n int) *core.Event {
	return &core.Event{
		ID:           fmt.Sprintf("%s/%s/%d", typ, key, n),
		Source:       "/test",
		SpecVersion:  core.SpecVersion,
		Type:         typ,
		Subject:      fmt.Sprintf("%s-%d", key, n),
		Time:         time.Now().UTC(),
		Data:         json.RawMessage(fmt.Sprintf(`{"key":%q,"n":%d}`, key, n)),
		PartitionKey: key,
	}
}

func publishEvents(t *testing.T, st *memstream.Stream, evs ...*core.Event) {
	t.Helper()
	for _, ev := range evs {
		if err := st.Publisher().Publish(sinkTopicPrefix+ev.Type, ev.ToMessage()); err != nil {
			t.Fatalf("publish %s: %v", ev.ID, err)
		}
	}
}

type sinkRun struct {
	r    *runtime.Runtime
	reg  *prometheus.Registry
	stop func() error
}

// runSinks runs a runtime with sinks and no connector on st, topics per
// type over types. setup, when set, is called between New and Run.
func runSinks(t *testing.T, st *memstream.Stream, types []string, setup func(*runtime.Runtime), sinks ...runtime.Sink) *sinkRun {
	t.Helper()
	return runSinksIn(t, "", st, types, setup, sinks...)
}

// runSinksIn is runSinks with a state directory.
func runSinksIn(t *testing.T, stateDir string, st *memstream.Stream, types []string, setup func(*runtime.Runtime), sinks ...runtime.Sink) *sinkRun {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := runtime.New(runtime.Options{
		StateDir:        stateDir,
		Stream:          st,
		Topics:          runtime.Topics{Mode: "per_type", Prefix: sinkTopicPrefix},
		EventTypes:      types,
		Sinks:           sinks,
		Registerer:      reg,
		ShutdownTimeout: 4 * time.Second,
		DrainTimeout:    2 * time.Second,
	})
	if err != nil {
		t.Fatalf("runtime.New: %v", err)
	}
	runtime.SetSinkTimings(r, 10, time.Second, 5*time.Second)
	if setup != nil {
		setup(r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				runErr = errors.New("Run did not return within 15s of the cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return &sinkRun{r: r, reg: reg, stop: stop}
}

func (s *sinkRun) sink(t *testing.T, name string) runtime.SinkStatus {
	t.Helper()
	for _, ss := range s.r.Status().Sinks {
		if ss.Name == name {
			return ss
		}
	}
	t.Fatalf("no sink %q in status", name)
	return runtime.SinkStatus{}
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deadLetters returns the dead letters on the runtime's dead-letter topic.
func deadLetters(t *testing.T, st *memstream.Stream) []runtime.DeadLetter {
	t.Helper()
	var out []runtime.DeadLetter
	for _, m := range st.Messages("tributary.deadletter") {
		ev, err := core.EventFromMessage(m)
		if err != nil {
			t.Fatalf("dead letter: %v", err)
		}
		if ev.Type != runtime.DeadLetterType {
			t.Fatalf("dead letter type %q, want %q", ev.Type, runtime.DeadLetterType)
		}
		var dl runtime.DeadLetter
		if err := json.Unmarshal(ev.Data, &dl); err != nil {
			t.Fatalf("dead letter data: %v", err)
		}
		out = append(out, dl)
	}
	return out
}

func TestSinkKeepsKeyOrderUnderConcurrency(t *testing.T) {
	types := []string{"com.acme.a", "com.acme.b", "com.acme.c", "com.acme.d"}
	const keys, perKey = 6, 15
	var evs []*core.Event
	for n := range perKey {
		for _, typ := range types {
			for k := range keys {
				evs = append(evs, sinkEvent(typ, fmt.Sprintf("%s-k%d", typ, k), n))
			}
		}
	}
	st := memstream.New()
	publishEvents(t, st, evs...)
	sink := &recSink{answer: func(ctx context.Context, d core.Delivery) core.Result {
		// The first two keys of every type are slow.
		if strings.HasSuffix(d.Event.PartitionKey, "-k0") || strings.HasSuffix(d.Event.PartitionKey, "-k1") {
			time.Sleep(2 * time.Millisecond)
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinks(t, st, types, nil, runtime.Sink{Name: "orders", Type: "test", Sink: sink, Concurrency: 4, MaxBatch: 5, From: core.FromBeginning})
	eventually(t, "every event delivered", func() bool { return len(sink.deliveredIDs()) >= len(evs) })
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	got := sink.deliveredIDs()
	if len(got) != len(evs) {
		t.Errorf("delivered %d events, want %d", len(got), len(evs))
	}
	next := map[string]int{}
	for _, id := range got {
		parts := strings.Split(id, "/")
		key := parts[1]
		var n int
		fmt.Sscan(parts[2], &n)
		if n != next[key] {
			t.Fatalf("key %s: event %d delivered when %d was due", key, n, next[key])
		}
		next[key]++
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.overlap) > 0 {
		t.Errorf("two Writes held keys %v at once", sink.overlap)
	}
	if sink.maxCalls > 4 {
		t.Errorf("%d Writes at once, want at most 4", sink.maxCalls)
	}
	if sink.maxCalls < 2 {
		t.Errorf("at most %d Write at once: the keys were not delivered in parallel", sink.maxCalls)
	}
}

func TestSinkSlowKeyDoesNotHoldOthers(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	var evs []*core.Event
	for n := range 3 {
		evs = append(evs, sinkEvent(typ, "stuck", n))
	}
	for n := range 20 {
		evs = append(evs, sinkEvent(typ, fmt.Sprintf("k%d", n%4), n))
	}
	publishEvents(t, st, evs...)
	release := make(chan struct{})
	sink := &recSink{answer: func(ctx context.Context, d core.Delivery) core.Result {
		if d.Event.PartitionKey == "stuck" {
			select {
			case <-release:
			case <-ctx.Done():
				return core.Result{Status: core.StatusRetry}
			}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	eventually(t, "the other keys delivered while one key is stuck", func() bool { return len(sink.deliveredIDs()) == 20 })
	close(release)
	eventually(t, "the stuck key delivered", func() bool { return len(sink.deliveredIDs()) == 23 })
	var stuck []string
	for _, id := range sink.deliveredIDs() {
		if strings.Contains(id, "/stuck/") {
			stuck = append(stuck, id)
		}
	}
	want := []string{typ + "/stuck/0", typ + "/stuck/1", typ + "/stuck/2"}
	if !slices.Equal(stuck, want) {
		t.Errorf("stuck key delivered %v, want %v", stuck, want)
	}
}

func TestSinkRedeliversAfterCrash(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	var evs []*core.Event
	for n := range 10 {
		evs = append(evs, sinkEvent(typ, "a", n))
	}
	publishEvents(t, st, evs...)

	// The first run delivers events 0 to 4 and is stopped while the
	// target holds event 5: it is written, never confirmed.
	holding := make(chan struct{})
	var once sync.Once
	first := &recSink{answer: func(ctx context.Context, d core.Delivery) core.Result {
		if d.Event.ID == evs[5].ID {
			once.Do(func() { close(holding) })
			<-ctx.Done()
			return core.Result{Status: core.StatusRetry, Err: ctx.Err()}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: first, From: core.FromBeginning})
	select {
	case <-holding:
	case <-time.After(10 * time.Second):
		t.Fatal("event 5 never reached the sink")
	}
	if err := run.stop(); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	delivered := first.deliveredIDs()
	if !slices.Equal(delivered, ids5(evs[:5])) {
		t.Fatalf("first run delivered %v, want events 0 to 4", delivered)
	}

	group, topic := runtime.SinkGroupPrefix+"wms", sinkTopicPrefix+typ
	if off, _ := st.Committed(group, topic); off != 5 {
		t.Errorf("committed offset %d after the first run, want 5: just past the delivered events", off)
	}

	// A new runtime on the same stream delivers what was not confirmed,
	// with the same ids, in order, and nothing that was.
	second := &recSink{}
	runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: second, From: core.FromBeginning})
	eventually(t, "events 5 to 9 delivered again", func() bool {
		return slices.Contains(second.deliveredIDs(), evs[9].ID)
	})
	if got := second.deliveredIDs(); !slices.Equal(got, ids5(evs[5:])) {
		t.Errorf("second run delivered %v, want events 5 to 9 in order", got)
	}
	eventually(t, "every event committed", func() bool {
		off, _ := st.Committed(group, topic)
		return off == 10
	})
}

func ids5(evs []*core.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

func TestSinkRetriesThenDelivers(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	evs := []*core.Event{sinkEvent(typ, "a", 0), sinkEvent(typ, "a", 1)}
	publishEvents(t, st, evs...)
	var mu sync.Mutex
	fails := 2
	sink := &recSink{answer: func(_ context.Context, d core.Delivery) core.Result {
		mu.Lock()
		defer mu.Unlock()
		if d.Event.ID == evs[0].ID && fails > 0 {
			fails--
			return core.Result{Status: core.StatusRetry, Err: errors.New("503 Service Unavailable"), Response: "503"}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{
		Name: "wms", Sink: sink, From: core.FromBeginning,
		Retry: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, time.Hour},
	})
	eventually(t, "both events delivered", func() bool { return len(sink.deliveredIDs()) == 2 })
	if got := sink.deliveredIDs(); !slices.Equal(got, ids5(evs)) {
		t.Errorf("delivered %v, want %v", got, ids5(evs))
	}
	var attempts []int
	for _, d := range sink.attemptsOf(evs[0].ID) {
		attempts = append(attempts, d.Attempt)
	}
	if !slices.Equal(attempts, []int{0, 1, 2}) {
		t.Errorf("attempts of event 0: %v, want [0 1 2]", attempts)
	}
	eventually(t, "status counts", func() bool {
		st := run.sink(t, "wms")
		return st.Delivered == 2 && st.Retried == 2 && st.RetriesPending == 0 && st.Lag == 0 && st.State == runtime.StateRunning
	})
	st2 := run.sink(t, "wms")
	if !strings.Contains(st2.LastError, "503") {
		t.Errorf("last error %q, want the 503", st2.LastError)
	}
	if v, _ := metricstest.Value(t, run.reg, "tributary_sink_retries_total", map[string]string{"sink": "wms"}); v != 2 {
		t.Errorf("tributary_sink_retries_total = %v, want 2", v)
	}
	if v, _ := metricstest.Value(t, run.reg, "tributary_sink_delivered_total", map[string]string{"sink": "wms"}); v != 2 {
		t.Errorf("tributary_sink_delivered_total = %v, want 2", v)
	}
	if v, _ := metricstest.Value(t, run.reg, "tributary_sink_delivery_seconds", map[string]string{"sink": "wms"}); v != 2 {
		t.Errorf("tributary_sink_delivery_seconds count = %v, want 2", v)
	}
}

func TestSinkHonoursRetryAfter(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	ev := sinkEvent(typ, "a", 0)
	publishEvents(t, st, ev)
	var mu sync.Mutex
	var times []time.Time
	sink := &recSink{answer: func(context.Context, core.Delivery) core.Result {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			return core.Result{Status: core.StatusRetry, Err: errors.New("429 Too Many Requests"), RetryAfter: 300 * time.Millisecond}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning, Retry: []time.Duration{time.Millisecond}})
	eventually(t, "the event delivered", func() bool { return len(sink.deliveredIDs()) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if wait := times[1].Sub(times[0]); wait < 300*time.Millisecond {
		t.Errorf("second attempt %s after the first, want at least the Retry-After of 300ms", wait)
	}
}

func TestSinkDeadLetters(t *testing.T) {
	const typ = "com.acme.order"
	tests := []struct {
		name       string
		answer     core.Result
		retry      []time.Duration
		reason     string
		attempts   int
		wantErr    string
		wantResp   string
		wantStatus string
	}{
		{
			name:     "refused at once",
			answer:   core.Result{Status: core.StatusFailed, Err: errors.New("422 Unprocessable Entity"), Response: `422 {"error":"bad sku"}`},
			retry:    []time.Duration{time.Hour},
			reason:   runtime.SinkReasonRefused,
			attempts: 1,
			wantErr:  "422",
			wantResp: `422 {"error":"bad sku"}`,
		},
		{
			name:     "schedule used up",
			answer:   core.Result{Status: core.StatusRetry, Err: errors.New("500 Internal Server Error"), Response: "500 oops"},
			retry:    []time.Duration{time.Millisecond, 2 * time.Millisecond},
			reason:   runtime.SinkReasonFailed,
			attempts: 3,
			wantErr:  "500",
			wantResp: "500 oops",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memstream.New()
			bad, next := sinkEvent(typ, "a", 0), sinkEvent(typ, "a", 1)
			publishEvents(t, st, bad, next)
			sink := &recSink{answer: func(_ context.Context, d core.Delivery) core.Result {
				if d.Event.ID == bad.ID {
					return tt.answer
				}
				return core.Result{Status: core.StatusDelivered}
			}}
			run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning, Retry: tt.retry})
			eventually(t, "the next event of the key delivered", func() bool { return len(sink.deliveredIDs()) == 1 })
			eventually(t, "the dead letter", func() bool { return len(deadLetters(t, st)) == 1 })
			dl := deadLetters(t, st)[0]
			if dl.Sink != "wms" || dl.Reason != tt.reason || !strings.Contains(dl.Error, tt.wantErr) || dl.Response != tt.wantResp || dl.EventType != typ {
				t.Errorf("dead letter %+v, want sink wms, reason %s, error with %q, response %q", dl, tt.reason, tt.wantErr, tt.wantResp)
			}
			var orig core.Event
			if err := json.Unmarshal(dl.Event, &orig); err != nil || orig.ID != bad.ID {
				t.Errorf("dead letter event %s (%v), want the event %s", dl.Event, err, bad.ID)
			}
			if n := len(sink.attemptsOf(bad.ID)); n != tt.attempts {
				t.Errorf("%d attempts, want %d", n, tt.attempts)
			}
			eventually(t, "status", func() bool {
				s := run.sink(t, "wms")
				return s.DeadLettered == 1 && s.Delivered == 1 && s.Lag == 0
			})
			if v, _ := metricstest.Value(t, run.reg, "tributary_sink_dead_lettered_total", map[string]string{"sink": "wms", "reason": tt.reason}); v != 1 {
				t.Errorf("tributary_sink_dead_lettered_total{reason=%q} = %v, want 1", tt.reason, v)
			}
		})
	}
}

func TestSinkGoneStopsSink(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	ev := sinkEvent(typ, "a", 0)
	publishEvents(t, st, ev)
	var mu sync.Mutex
	gone := true
	sink := &recSink{answer: func(context.Context, core.Delivery) core.Result {
		mu.Lock()
		defer mu.Unlock()
		if gone {
			return core.Result{Status: core.StatusFailed, Err: fmt.Errorf("410 Gone: %w", core.ErrSinkGone), Response: "410 Gone"}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	eventually(t, "the sink failed", func() bool { return run.sink(t, "wms").State == runtime.StateFailed })
	s := run.sink(t, "wms")
	if !strings.Contains(s.Error, "410 Gone") || s.DeadLettered != 0 || s.Delivered != 0 {
		t.Errorf("status %+v, want failed with the 410, nothing dead-lettered or delivered", s)
	}
	if n := len(deadLetters(t, st)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	if v, _ := metricstest.Value(t, run.reg, "tributary_sink_up", map[string]string{"sink": "wms"}); v != 0 {
		t.Errorf("tributary_sink_up = %v, want 0", v)
	}

	// Once the target is back, resuming starts the sink again and the
	// event, never committed, is delivered.
	mu.Lock()
	gone = false
	mu.Unlock()
	if err := run.r.ResumeSink("wms"); err != nil {
		t.Fatalf("ResumeSink: %v", err)
	}
	eventually(t, "the event delivered after resume", func() bool { return slices.Contains(sink.deliveredIDs(), ev.ID) })
	eventually(t, "running", func() bool { return run.sink(t, "wms").State == runtime.StateRunning })
}

func TestSinkCircuitOpensAndCloses(t *testing.T) {
	// One event per type: with one topic per type, the events are all
	// in flight at once whatever the stream's window.
	var types []string
	var evs []*core.Event
	for i := range 6 {
		typ := fmt.Sprintf("com.acme.t%d", i)
		types = append(types, typ)
		evs = append(evs, sinkEvent(typ, fmt.Sprintf("k%d", i), 0))
	}
	st := memstream.New()
	publishEvents(t, st, evs...)
	var mu sync.Mutex
	down := true
	probes := 0
	sink := &recSink{answer: func(context.Context, core.Delivery) core.Result {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return core.Result{Status: core.StatusRetry, Err: errors.New("connection refused")}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	// A long schedule: without the circuit's probe, nothing would be
	// attempted again for an hour.
	run := runSinks(t, st, types, func(r *runtime.Runtime) {
		runtime.SetSinkTimings(r, 3, 50*time.Millisecond, 100*time.Millisecond)
	}, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning, Retry: []time.Duration{time.Hour, time.Hour}})
	eventually(t, "the circuit open", func() bool {
		s := run.sink(t, "wms")
		return s.State == runtime.StateCircuitOpen && s.Circuit != runtime.CircuitClosed
	})
	// Probes fail for a while; they use up no attempt of the schedule.
	sink.mu.Lock()
	before := len(sink.attempts)
	sink.mu.Unlock()
	eventually(t, "more probes than events", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		probes = len(sink.attempts) - before
		return probes > len(evs)
	})
	if n := len(deadLetters(t, st)); n != 0 {
		t.Errorf("%d dead letters while the circuit was open, want none", n)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	eventually(t, "every event delivered once the target is back", func() bool { return len(sink.deliveredIDs()) == len(evs) })
	eventually(t, "the circuit closed", func() bool {
		s := run.sink(t, "wms")
		return s.State == runtime.StateRunning && s.Circuit == runtime.CircuitClosed
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, d := range sink.attempts {
		if d.Attempt > 1 {
			t.Errorf("event %s sent at attempt %d: the open circuit used up its schedule", d.Event.ID, d.Attempt)
		}
	}
}

func TestSinkPauseResume(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	first := sinkEvent(typ, "a", 0)
	publishEvents(t, st, first)
	sink := &recSink{}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	eventually(t, "the first event delivered", func() bool { return len(sink.deliveredIDs()) == 1 })

	if err := run.r.PauseSink("wms"); err != nil {
		t.Fatalf("PauseSink: %v", err)
	}
	if s := run.sink(t, "wms"); s.State != runtime.StatePaused {
		t.Errorf("state %q, want paused", s.State)
	}
	later := []*core.Event{sinkEvent(typ, "a", 1), sinkEvent(typ, "b", 2)}
	publishEvents(t, st, later...)
	time.Sleep(200 * time.Millisecond)
	if got := sink.deliveredIDs(); len(got) != 1 {
		t.Errorf("delivered %v while paused, want only the first event", got)
	}
	if err := run.r.ResumeSink("wms"); err != nil {
		t.Fatalf("ResumeSink: %v", err)
	}
	eventually(t, "the later events delivered after resume", func() bool { return len(sink.deliveredIDs()) == 3 })
	if s := run.sink(t, "wms"); s.State != runtime.StateRunning {
		t.Errorf("state %q after resume, want running", s.State)
	}
}

func TestSinkPauseUnknown(t *testing.T) {
	r, err := runtime.New(runtime.Options{
		Stream: memstream.New(),
		Sinks: []runtime.Sink{
			{Name: "wms", Sink: &recSink{}},
			{Name: "off", Sink: &recSink{}, Disabled: true},
		},
		EventTypes: []string{"com.acme.order"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		sink   string
		noSink bool
		ok     bool
	}{
		{name: "known", sink: "wms", ok: true},
		{name: "unknown", sink: "nope", noSink: true},
		{name: "disabled", sink: "off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []func(string) error{r.PauseSink, r.ResumeSink} {
				err := f(tt.sink)
				if (err == nil) != tt.ok || errors.Is(err, runtime.ErrNoSink) != tt.noSink {
					t.Errorf("error %v, want ok %v, ErrNoSink %v", err, tt.ok, tt.noSink)
				}
			}
		})
	}
}

func TestSinkFilterAndMap(t *testing.T) {
	types := []string{"com.acme.order.created", "com.acme.order.shipped", "com.acme.customer.created"}
	st := memstream.New()
	keep := sinkEvent(types[0], "a", 0)
	skipped := sinkEvent(types[1], "a", 1)
	skipped.Subject = "skip"
	badFilter := sinkEvent(types[0], "b", 0)
	badFilter.Subject = "bad-filter"
	badMap := sinkEvent(types[1], "c", 0)
	badMap.Subject = "bad-map"
	shipped := sinkEvent(types[1], "a", 2)
	other := sinkEvent(types[2], "a", 3)
	publishEvents(t, st, keep, skipped, badFilter, badMap, shipped, other)

	sink := &recSink{}
	run := runSinks(t, st, types, nil, runtime.Sink{
		Name: "orders", Sink: sink, From: core.FromBeginning,
		Types: []string{"com.acme.order.*"},
		Filter: func(ev *core.Event) (bool, error) {
			switch ev.Subject {
			case "skip":
				return false, nil
			case "bad-filter":
				return false, errors.New("event.data.total is not a number")
			}
			return true, nil
		},
		Map: func(ev *core.Event) (any, error) {
			if ev.Subject == "bad-map" {
				return nil, errors.New("event.data.order_id is missing")
			}
			return map[string]string{"id": ev.ID, "type": ev.Type}, nil
		},
	})
	eventually(t, "deliveries and dead letters", func() bool {
		s := run.sink(t, "orders")
		return s.Delivered == 2 && s.DeadLettered == 2 && s.Skipped == 1 && s.Lag == 0
	})
	sink.mu.Lock()
	var got []string
	for _, d := range sink.delivered {
		m, _ := d.Data.(map[string]string)
		if m["id"] != d.Event.ID {
			t.Errorf("delivery %s has data %v, want its mapping", d.Event.ID, d.Data)
		}
		got = append(got, d.Event.ID)
	}
	sink.mu.Unlock()
	slices.Sort(got)
	want := []string{keep.ID, shipped.ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v (the customer event is not on the sink's topics)", got, want)
	}
	reasons := map[string]string{}
	for _, dl := range deadLetters(t, st) {
		var ev core.Event
		_ = json.Unmarshal(dl.Event, &ev)
		reasons[ev.ID] = dl.Reason
	}
	wantReasons := map[string]string{badFilter.ID: runtime.SinkReasonFilter, badMap.ID: runtime.SinkReasonMap}
	if fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
		t.Errorf("dead letters %v, want %v", reasons, wantReasons)
	}
}

func TestSinkClosesWithinDeadline(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	publishEvents(t, st, sinkEvent(typ, "a", 0), sinkEvent(typ, "b", 1))
	writing := make(chan struct{}, 2)
	// The target never answers: Write returns only once its context
	// is cancelled.
	sink := &recSink{answer: func(ctx context.Context, d core.Delivery) core.Result {
		writing <- struct{}{}
		<-ctx.Done()
		return core.Result{Status: core.StatusRetry, Err: ctx.Err()}
	}}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	<-writing
	start := time.Now()
	if err := run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %s, more than the shutdown timeout of 4s", d)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.closes != 1 || sink.calls != 0 {
		t.Errorf("sink closed %d times with %d Writes running, want closed once after every Write returned", sink.closes, sink.calls)
	}
	if s := run.sink(t, "wms"); s.State != runtime.StateStopped {
		t.Errorf("state %q, want stopped", s.State)
	}
}

func TestSinkOpenErrorIsRetried(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	publishEvents(t, st, sinkEvent(typ, "a", 0))
	sink := &recSink{openErr: errors.New("dial tcp: connection refused")}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	eventually(t, "delivered after the second Open", func() bool { return len(sink.deliveredIDs()) == 1 })
	sink.mu.Lock()
	opens, closes := sink.opens, sink.closes
	sink.mu.Unlock()
	if opens != 2 || closes != 1 {
		t.Errorf("%d opens and %d closes, want 2 opens and a Close after the failed one", opens, closes)
	}
	if s := run.sink(t, "wms"); !strings.Contains(s.LastError, "connection refused") {
		t.Errorf("last error %q, want the Open error", s.LastError)
	}
}

func TestSinkWithoutTopics(t *testing.T) {
	st := memstream.New()
	run := runSinks(t, st, []string{"com.acme.customer.created"}, nil, runtime.Sink{Name: "wms", Sink: &recSink{}, Types: []string{"com.acme.order.*"}})
	eventually(t, "failed", func() bool { return run.sink(t, "wms").State == runtime.StateFailed })
	if s := run.sink(t, "wms"); !strings.Contains(s.Error, "com.acme.order.*") {
		t.Errorf("error %q, want it to name the sink's events", s.Error)
	}
}

func TestSinkParksLongRetries(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	dir := t.TempDir()
	var evs []*core.Event
	for n := range 3 {
		evs = append(evs, sinkEvent(typ, "slow", n))
	}
	for n := range 10 {
		evs = append(evs, sinkEvent(typ, fmt.Sprintf("k%d", n), n))
	}
	publishEvents(t, st, evs...)
	group, topic := runtime.SinkGroupPrefix+"wms", sinkTopicPrefix+typ
	parkAfter := func(r *runtime.Runtime) { runtime.SetSinkParkAfter(r, time.Second) }
	cfg := func(s core.Sink) runtime.Sink {
		return runtime.Sink{Name: "wms", Sink: s, From: core.FromBeginning, Retry: []time.Duration{2 * time.Second, time.Hour}}
	}

	// The first run parks the slow key after its first failure: every
	// event is committed, the slow key's in the retry store.
	first := &recSink{answer: func(_ context.Context, d core.Delivery) core.Result {
		if d.Event.PartitionKey == "slow" {
			return core.Result{Status: core.StatusRetry, Err: errors.New("503 Service Unavailable")}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinksIn(t, dir, st, []string{typ}, parkAfter, cfg(first))
	eventually(t, "every offset committed while the slow key waits", func() bool {
		off, _ := st.Committed(group, topic)
		return off == int64(len(evs))
	})
	s := run.sink(t, "wms")
	if s.Lag != 0 || s.RetriesPending != 1 || s.Delivered != 10 {
		t.Errorf("status %+v, want no lag, one key waiting, 10 delivered", s)
	}
	if err := run.stop(); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if n := len(first.attemptsOf(evs[0].ID)); n != 1 {
		t.Errorf("%d attempts of the slow key's first event in the first run, want 1", n)
	}

	// A new runtime takes the parked key from the store; an event of the
	// key read meanwhile waits behind it. They are delivered in order,
	// the first with its attempt count kept.
	second := &recSink{}
	run = runSinksIn(t, dir, st, []string{typ}, parkAfter, cfg(second))
	eventually(t, "the second run running", func() bool { return run.sink(t, "wms").State == runtime.StateRunning })
	late := sinkEvent(typ, "slow", 3)
	publishEvents(t, st, late)
	eventually(t, "the slow key delivered", func() bool { return len(second.deliveredIDs()) == 4 })
	want := append(ids5(evs[:3]), late.ID)
	if got := second.deliveredIDs(); !slices.Equal(got, want) {
		t.Errorf("second run delivered %v, want %v", got, want)
	}
	if a := second.attemptsOf(evs[0].ID); len(a) != 1 || a[0].Attempt != 1 {
		t.Errorf("attempts of the first parked event %v, want one, at attempt 1", a)
	}
	if d := second.attemptsOf(evs[0].ID); len(d) == 1 && string(d[0].Event.Data) != string(evs[0].Data) {
		t.Errorf("parked event data %s, want %s", d[0].Event.Data, evs[0].Data)
	}
}

func TestSinkDeadLettersParkedEvent(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	bad, next := sinkEvent(typ, "a", 0), sinkEvent(typ, "a", 1)
	publishEvents(t, st, bad, next)
	sink := &recSink{answer: func(_ context.Context, d core.Delivery) core.Result {
		if d.Event.ID == bad.ID {
			return core.Result{Status: core.StatusRetry, Err: errors.New("500 Internal Server Error"), Response: "500"}
		}
		return core.Result{Status: core.StatusDelivered}
	}}
	run := runSinksIn(t, t.TempDir(), st, []string{typ}, func(r *runtime.Runtime) { runtime.SetSinkParkAfter(r, 100*time.Millisecond) },
		runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning, Retry: []time.Duration{150 * time.Millisecond}})
	eventually(t, "the next event delivered from the store", func() bool { return len(sink.deliveredIDs()) == 1 })
	dls := deadLetters(t, st)
	if len(dls) != 1 || dls[0].Reason != runtime.SinkReasonFailed || dls[0].Response != "500" {
		t.Fatalf("dead letters %+v, want the parked event, delivery_failed, with the last response", dls)
	}
	if a := sink.attemptsOf(bad.ID); len(a) != 2 || a[1].Attempt != 1 {
		t.Errorf("attempts %v, want two, the second parked and loaded back at attempt 1", a)
	}
	eventually(t, "nothing pending", func() bool {
		s := run.sink(t, "wms")
		off, _ := st.Committed(runtime.SinkGroupPrefix+"wms", sinkTopicPrefix+typ)
		return s.RetriesPending == 0 && s.Lag == 0 && s.DeadLettered == 1 && off == 2
	})
}

// reportingSink is a core.ReportingSink: it delivers the keys of a Write
// in parallel, each key's deliveries one after another with answer, and
// reports a key's results as soon as they are done. It records what it
// delivered and any key it was handed while an earlier Write still held
// it unreported.
type reportingSink struct {
	recSink
}

func (s *reportingSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	return s.WriteReporting(ctx, ds, nil)
}

func (s *reportingSink) WriteReporting(ctx context.Context, ds []core.Delivery, report func(int, core.Result)) []core.Result {
	groups := map[string][]int{}
	var order []string
	s.mu.Lock()
	if s.held == nil {
		s.held = map[string]bool{}
	}
	for i, d := range ds {
		k := d.Event.PartitionKey
		if _, ok := groups[k]; !ok {
			order = append(order, k)
			if s.held[k] {
				s.overlap = append(s.overlap, k)
			}
			s.held[k] = true
		}
		groups[k] = append(groups[k], i)
	}
	s.mu.Unlock()
	out := make([]core.Result, len(ds))
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Go(func() {
			stopped := false
			for _, i := range groups[k] {
				if stopped || ctx.Err() != nil {
					out[i] = core.Result{Status: core.StatusRetry}
					continue
				}
				r := core.Result{Status: core.StatusDelivered}
				if s.answer != nil {
					r = s.answer(ctx, ds[i])
				}
				out[i] = r
				s.mu.Lock()
				s.attempts = append(s.attempts, ds[i])
				if r.Status == core.StatusDelivered {
					s.delivered = append(s.delivered, ds[i])
				} else {
					stopped = true
				}
				s.mu.Unlock()
			}
			s.mu.Lock()
			delete(s.held, k)
			s.mu.Unlock()
			if report != nil {
				for _, i := range groups[k] {
					report(i, out[i])
				}
			}
		})
	}
	wg.Wait()
	return out
}

var _ core.ReportingSink = (*reportingSink)(nil)

// A sink that reports each key's results as they come frees the keys of
// a batch that are done while another key of the same batch still waits
// for its target: their later events go out in the meantime, in order.
func TestSinkSlowKeyDoesNotHoldItsBatchMates(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	gates, release := make(chan struct{}), make(chan struct{})
	var inflight atomic.Int32
	sink := &reportingSink{recSink{answer: func(ctx context.Context, d core.Delivery) core.Result {
		var wait chan struct{}
		switch d.Event.PartitionKey {
		case "gate1", "gate2":
			wait = gates
		case "stuck":
			wait = release
		default:
			return core.Result{Status: core.StatusDelivered}
		}
		inflight.Add(1)
		defer inflight.Add(-1)
		select {
		case <-wait:
			return core.Result{Status: core.StatusDelivered}
		case <-ctx.Done():
			return core.Result{Status: core.StatusRetry}
		}
	}}}
	// Two gates fill both Write slots, so that the events that follow
	// queue up and go out in one batch when the gates open.
	publishEvents(t, st, sinkEvent(typ, "gate1", 0))
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning, Concurrency: 2, MaxBatch: 64})
	eventually(t, "the first gate in its Write", func() bool { return inflight.Load() == 1 })
	publishEvents(t, st, sinkEvent(typ, "gate2", 0))
	eventually(t, "the second gate in its Write", func() bool { return inflight.Load() == 2 })
	batch := []*core.Event{sinkEvent(typ, "stuck", 0)}
	for n := range 4 {
		batch = append(batch, sinkEvent(typ, fmt.Sprintf("k%d", n), 0))
	}
	publishEvents(t, st, batch...)
	eventually(t, "the batch read behind the gates", func() bool { return run.sink(t, "wms").Lag == 7 })
	close(gates)
	eventually(t, "the batch's other keys delivered", func() bool { return len(sink.deliveredIDs()) == 6 })
	// Without early results, the Write holding the stuck key would hold
	// the other keys of its batch until it returned.
	var later []*core.Event
	for n := range 4 {
		later = append(later, sinkEvent(typ, fmt.Sprintf("k%d", n), 1), sinkEvent(typ, fmt.Sprintf("k%d", n), 2))
	}
	publishEvents(t, st, later...)
	eventually(t, "the later events of the other keys delivered while the stuck key waits", func() bool { return len(sink.deliveredIDs()) == 14 })
	close(release)
	eventually(t, "the stuck key delivered", func() bool { return len(sink.deliveredIDs()) == 15 })
	perKey := map[string][]string{}
	for _, id := range sink.deliveredIDs() {
		k := strings.Split(id, "/")[1]
		perKey[k] = append(perKey[k], id)
	}
	for n := range 4 {
		k := fmt.Sprintf("k%d", n)
		want := []string{typ + "/" + k + "/0", typ + "/" + k + "/1", typ + "/" + k + "/2"}
		if !slices.Equal(perKey[k], want) {
			t.Errorf("key %s delivered %v, want %v", k, perKey[k], want)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.overlap) > 0 {
		t.Errorf("keys handed to two Writes at once: %v", sink.overlap)
	}
}
