package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// The checks that run a sink through the real runtime, on the in-memory
// stream.

const (
	// sinkRuntimeName names the sink in the runtime, and its group.
	sinkRuntimeName = "conformance"
	// sinkRuntimeTopic is the one topic the checks publish on.
	sinkRuntimeTopic = "conformance.events"
)

// errRuntimeStuck says a runtime did not return from Run after its
// shutdown deadline.
var errRuntimeStuck = errors.New("the runtime did not stop: the sink's Close did not return")

// sinkRuntime is one runtime delivering st's events to one sink.
type sinkRuntime struct {
	rt   *runtime.Runtime
	stop func() error
}

// startSinkRuntime runs a runtime that delivers the events of st to s, as
// sink sinkRuntimeName, until the check ends or stop is called; stopping
// it waits for Writes in flight up to shutdown.
func (r *sinkRun) startSinkRuntime(st *memstream.Stream, env core.Env, s core.Sink, shutdown time.Duration) *sinkRuntime {
	r.t.Helper()
	sink := runtime.Sink{
		Name: sinkRuntimeName, Type: "conformance", Sink: s, From: core.FromBeginning,
		// Long waits: a check sees a delivery asked to be retried stay
		// uncommitted, never retried behind its back.
		Retry:       []time.Duration{time.Hour},
		Concurrency: 4, MaxBatch: 4,
	}
	if r.h.Data != nil {
		sink.Map = func(ev *core.Event) (any, error) { return r.h.Data(ev), nil }
	}
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: sinkRuntimeTopic},
		Sinks:           []runtime.Sink{sink},
		StateDir:        env.StateDir,
		HTTP:            env.HTTP,
		Admin:           env.Admin,
		Registerer:      prometheus.NewRegistry(),
		ShutdownTimeout: shutdown,
		DrainTimeout:    shutdown,
	})
	if err != nil {
		r.t.Fatalf("runtime.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(shutdown + r.h.Timeout):
				runErr = fmt.Errorf("%w within %s of its shutdown deadline", errRuntimeStuck, r.h.Timeout)
			}
		})
		return runErr
	}
	r.t.Cleanup(func() { _ = stop() })
	return &sinkRuntime{rt: rt, stop: stop}
}

// publish appends the events of ds to st.
func (r *sinkRun) publish(st *memstream.Stream, ds []core.Delivery) {
	r.t.Helper()
	for _, d := range ds {
		if err := st.Publisher().Publish(sinkRuntimeTopic, d.Event.ToMessage()); err != nil {
			r.t.Fatalf("publish %s: %v", r.label(d), err)
		}
	}
}

// waitCommitted waits until the sink's group committed n events.
func (r *sinkRun) waitCommitted(st *memstream.Stream, rt *sinkRuntime, n int64) {
	r.t.Helper()
	deadline := time.Now().Add(r.h.Timeout)
	for {
		off, _ := st.Committed(runtime.SinkGroupPrefix+sinkRuntimeName, sinkRuntimeTopic)
		if off >= n {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the sink's group committed %d of %d events within %s (sink status %+v)", off, n, r.h.Timeout, rt.rt.Status().Sinks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// crashShutdown is how long a crashed runtime waits for its Writes in
// flight, which never report, before it stops.
const crashShutdown = 500 * time.Millisecond

// crashSink delivers through a sink until a Write holds an event at or
// after crashAt in stream order; that Write reaches the target, then
// never reports to the runtime, not even when its context ends: the
// sidecar died between the write and the commit.
type crashSink struct {
	core.Sink
	r       *sinkRun
	crashAt int
	crashed chan struct{}
	once    sync.Once
	// dead is closed when the check ends; the crashed Writes then return,
	// to no one.
	dead chan struct{}
}

func (s *crashSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	rs := s.Sink.Write(ctx, ds)
	crash := false
	for _, d := range ds {
		crash = crash || s.r.seqs[d.Event.ID] >= s.crashAt
	}
	if !crash {
		return rs
	}
	s.once.Do(func() { close(s.crashed) })
	<-s.dead
	out := make([]core.Result, len(ds))
	for i := range out {
		out[i] = core.Result{Status: core.StatusRetry, Err: errors.New("the sidecar crashed before the commit")}
	}
	return out
}

// testSinkRedelivery runs the sink in the runtime, crashes it after a
// Write reached the target and before the runtime committed it, and runs
// a new runtime and a new sink on the same stream: every event arrives,
// those after the last commit again with the same ids, each key in order.
func testSinkRedelivery(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	env := h.Env(t)
	st := memstream.New()
	before, after := r.deliveries(10, "a", "b", "c"), r.deliveries(10, "a", "b", "c")
	first := &crashSink{Sink: h.New(t), r: r, crashAt: r.seqs[after[0].Event.ID], crashed: make(chan struct{}), dead: make(chan struct{})}
	// Registered first, run last: a crashed Write must not report even
	// to a runtime that gave up on it and is still finishing.
	t.Cleanup(func() { close(first.dead) })
	run := r.startSinkRuntime(st, env, first, crashShutdown)
	r.publish(st, before)
	r.waitReceived(ids(before))
	r.waitCommitted(st, run, int64(len(before)))
	r.publish(st, after)
	select {
	case <-first.crashed:
	case <-time.After(h.Timeout):
		t.Fatalf("the events published after the first %d did not reach the sink within %s (status %+v)", len(before), h.Timeout, run.rt.Status().Sinks)
	}
	// The crashed Writes never return: the runtime gives up on them when
	// its shutdown deadline passes, and may say so.
	err := run.stop()
	switch {
	case errors.Is(err, errRuntimeStuck):
		t.Fatalf("the crashed runtime: %v", err)
	case err != nil:
		t.Logf("the crashed runtime: %v", err)
	}
	off, _ := st.Committed(runtime.SinkGroupPrefix+sinkRuntimeName, sinkRuntimeTopic)
	if off != int64(len(before)) {
		t.Fatalf("the crashed runtime committed %d events, want %d: the Writes after them never reported", off, len(before))
	}
	written := len(r.received()) - len(before)
	t.Logf("the target took %d events before the crash, %d of them after the last commit", len(r.received()), written)

	// The sidecar starts again, with a new sink value on the same stream.
	run = r.startSinkRuntime(st, env, h.New(t), h.Timeout)
	all := append(ids(before), ids(after)...)
	got := r.waitReceived(all)
	r.waitCommitted(st, run, int64(len(all)))
	r.checkOrder(got, true)
	counts := map[string]int{}
	for _, id := range got {
		counts[id]++
	}
	for _, d := range before {
		if counts[d.Event.ID] > 1 {
			t.Errorf("%s was committed before the crash and delivered again after it", r.label(d))
		}
	}
	if err := run.stop(); err != nil {
		t.Errorf("the second runtime: %v", err)
	}
}

// testSinkDeadLetter runs the sink in the runtime against a target that
// refuses an event for good: the event goes to the dead-letter topic with
// the sink's name and the target's reason, its key goes on, and the
// offsets are committed past it.
func testSinkDeadLetter(t TB, h SinkHarness) {
	if h.Refuse == nil {
		t.Skipf("the harness has no Refuse hook: %s", reason(h.Capabilities.RefuseReason))
	}
	r := newSinkRun(t, h)
	env := h.Env(t)
	st := memstream.New()
	ds := r.deliveries(6, "a", "b") // a#1 b#2 a#3 b#4 a#5 b#6
	refused, taken := ds[2:3], []core.Delivery{ds[0], ds[1], ds[3], ds[4], ds[5]}
	if !h.Capabilities.Targeted {
		refused, taken = ds, nil
	}
	r.stage(h.Refuse, ids(refused))
	run := r.startSinkRuntime(st, env, h.New(t), h.Timeout)
	r.publish(st, ds)
	got := r.waitReceived(ids(taken))
	r.waitCommitted(st, run, int64(len(ds)))
	r.checkOrder(got, false)
	r.checkNotTaken(ids(refused), "the target refused it")

	letters := map[string]runtime.DeadLetter{}
	for _, m := range st.Messages("tributary.deadletter") {
		ev, err := core.EventFromMessage(m)
		if err != nil {
			t.Fatalf("dead letter %s: %v", m.UUID, err)
		}
		var dl runtime.DeadLetter
		if err := json.Unmarshal(ev.Data, &dl); err != nil {
			t.Fatalf("dead letter %s: %v", ev.ID, err)
		}
		var dead core.Event
		if err := json.Unmarshal(dl.Event, &dead); err != nil {
			t.Fatalf("the event of dead letter %s: %v", ev.ID, err)
		}
		letters[dead.ID] = dl
	}
	for _, d := range refused {
		dl, ok := letters[d.Event.ID]
		switch {
		case !ok:
			t.Errorf("%s was refused by the target and has no dead letter", r.label(d))
		case dl.Sink != sinkRuntimeName || dl.Reason != runtime.SinkReasonRefused || dl.Error == "":
			t.Errorf("the dead letter of %s has sink %q, reason %q, error %q: want sink %q, reason %q and the target's reason", r.label(d), dl.Sink, dl.Reason, dl.Error, sinkRuntimeName, runtime.SinkReasonRefused)
		}
	}
	if len(letters) != len(refused) {
		t.Errorf("%d dead letters, want %d: only refused events are dead-lettered", len(letters), len(refused))
	}
	if err := run.stop(); err != nil {
		t.Errorf("runtime: %v", err)
	}
}
