package conformance_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// target is a system that receives events, recording what it took. Its
// failures are staged by the harness's hooks.
type target struct {
	// targeted: Fail and Refuse fail only the ids given; else every
	// delivery.
	targeted bool

	mu        sync.Mutex
	got       []conformance.Delivered
	failing   map[string]bool
	refusing  map[string]bool
	failAll   bool
	refuseAll bool
	stalled   chan struct{} // closed by recover
}

func newTarget(targeted bool) *target {
	return &target{targeted: targeted, failing: map[string]bool{}, refusing: map[string]bool{}}
}

// take delivers one event, as an HTTP endpoint would answer it.
func (tg *target) take(ctx context.Context, d core.Delivery) core.Result {
	tg.mu.Lock()
	id := d.Event.ID
	switch {
	case tg.stalled != nil:
		stalled := tg.stalled
		tg.mu.Unlock()
		select {
		case <-ctx.Done():
			return core.Result{Status: core.StatusRetry, Err: ctx.Err()}
		case <-stalled:
			return core.Result{Status: core.StatusRetry, Err: errors.New("connection reset")}
		}
	case tg.failAll || tg.failing[id]:
		tg.mu.Unlock()
		return core.Result{Status: core.StatusRetry, Err: errors.New("503 Service Unavailable"), Response: "503 Service Unavailable"}
	case tg.refuseAll || tg.refusing[id]:
		tg.mu.Unlock()
		return core.Result{Status: core.StatusFailed, Err: errors.New("400 Bad Request"), Response: "400 Bad Request"}
	}
	tg.got = append(tg.got, conformance.Delivered{ID: id})
	tg.mu.Unlock()
	return core.Result{Status: core.StatusDelivered}
}

func (tg *target) received() []conformance.Delivered {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.got)
}

func (tg *target) fail(_ conformance.TB, ids []string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.failAll = !tg.targeted
	for _, id := range ids {
		tg.failing[id] = true
	}
}

func (tg *target) refuse(_ conformance.TB, ids []string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.refuseAll = !tg.targeted
	for _, id := range ids {
		tg.refusing[id] = true
	}
}

func (tg *target) stall(conformance.TB) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	tg.stalled = make(chan struct{})
}

func (tg *target) recover(conformance.TB) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	clear(tg.failing)
	clear(tg.refusing)
	tg.failAll, tg.refuseAll = false, false
	if tg.stalled != nil {
		close(tg.stalled)
		tg.stalled = nil
	}
}

// sinkHarness is the harness of a sink delivering to tg.
func sinkHarness(tg *target, timeout time.Duration, sink func() core.Sink) conformance.SinkHarness {
	return conformance.SinkHarness{
		New:          func(conformance.TB) core.Sink { return sink() },
		Received:     tg.received,
		Fail:         tg.fail,
		Refuse:       tg.refuse,
		Stall:        tg.stall,
		Recover:      tg.recover,
		Capabilities: conformance.SinkCapabilities{Targeted: tg.targeted, TargetedReason: "the target fails as a whole"},
		Timeout:      timeout,
	}
}

func TestSinkKitOnSinkFunc(t *testing.T) {
	tg := newTarget(true)
	conformance.RunSink(t, sinkHarness(tg, 0, func() core.Sink { return core.SinkFunc(tg.take) }))
}

func TestSinkKitOnSinkFuncWholeTarget(t *testing.T) {
	tg := newTarget(false)
	conformance.RunSink(t, sinkHarness(tg, 0, func() core.Sink { return core.SinkFunc(tg.take) }))
}

// sinkFlaw is a defect a flawedSink can be built with, for the kit to find.
type sinkFlaw int

const (
	soundSink           sinkFlaw = iota
	dropsLastResult              // returns one result fewer than deliveries
	deliversPastFailure          // goes on with a key after one of its deliveries failed
	hidesAttempts                // goes on with a key after a failure, reporting the later ones not attempted
	refusalAsRetry               // reports a refusal as StatusRetry
	retryAsFailure               // reports a transient failure as StatusFailed
	failsWithoutReason           // StatusFailed with no error
	reversesBatch                // delivers a batch last first
	ignoresWriteCancel           // a delivery in flight ignores the context
	cancelAsFailure              // a cancelled context gives the first delivery StatusFailed
	claimsDelivery               // reports delivered what the target never took
	sinkLeaksGoroutine           // Open starts a goroutine Close does not stop
	closesOnce                   // a second Close fails
	opensSinkOnce                // Open after Close fails
)

// flawedSink delivers to a target through core.SinkFunc, but for its flaw.
type flawedSink struct {
	tg      *target
	flaw    sinkFlaw
	release chan struct{}

	mu     sync.Mutex
	closed int
}

func (s *flawedSink) Configure(core.Config) error { return nil }

func (s *flawedSink) Open(context.Context, core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flaw == opensSinkOnce && s.closed > 0 {
		return errors.New("sink closed")
	}
	if s.flaw == sinkLeaksGoroutine {
		go func() { <-s.release }()
	}
	return nil
}

func (s *flawedSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	take := s.tg.take
	switch s.flaw {
	case ignoresWriteCancel:
		take = func(_ context.Context, d core.Delivery) core.Result { return s.tg.take(context.Background(), d) }
	case claimsDelivery:
		take = func(context.Context, core.Delivery) core.Result { return core.Result{Status: core.StatusDelivered} }
	case deliversPastFailure, hidesAttempts:
		out := make([]core.Result, len(ds))
		held := map[string]bool{}
		for i, d := range ds {
			out[i] = take(ctx, d)
			if held[d.Event.PartitionKey] && s.flaw == hidesAttempts {
				out[i] = core.Result{Status: core.StatusRetry}
			}
			if out[i].Status != core.StatusDelivered {
				held[d.Event.PartitionKey] = true
			}
		}
		return out
	case reversesBatch:
		rev := slices.Clone(ds)
		slices.Reverse(rev)
		out := core.SinkFunc(take).Write(ctx, rev)
		slices.Reverse(out)
		return out
	}
	out := core.SinkFunc(take).Write(ctx, ds)
	for i, r := range out {
		switch {
		case s.flaw == refusalAsRetry && r.Status == core.StatusFailed:
			out[i].Status = core.StatusRetry
		case s.flaw == retryAsFailure && r.Status == core.StatusRetry && r.Err != nil:
			out[i].Status = core.StatusFailed
		case s.flaw == failsWithoutReason && r.Status == core.StatusFailed:
			out[i].Err = nil
		case s.flaw == cancelAsFailure && ctx.Err() != nil && i == 0:
			out[i] = core.Result{Status: core.StatusFailed, Err: ctx.Err()}
		}
	}
	if s.flaw == dropsLastResult && len(out) > 0 {
		out = out[:len(out)-1]
	}
	return out
}

func (s *flawedSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	if s.flaw == closesOnce && s.closed > 1 {
		return errors.New("sink already closed")
	}
	return nil
}

// TestSinkKitFindsFlaws runs the check meant to find each defect against a
// sink with that defect and checks that it fails, saying why, while the
// sound sink passes every check.
func TestSinkKitFindsFlaws(t *testing.T) {
	tests := []struct {
		name       string
		flaw       sinkFlaw
		check      string
		wantReason string
	}{
		{name: "sound sink", flaw: soundSink},
		{name: "drops a result", flaw: dropsLastResult, check: "WriteResults", wantReason: "returned 11 results: it must return one per delivery"},
		{name: "delivers past a failed delivery of its key", flaw: deliversPastFailure, check: "NoDeliveryAfterFailedKey", wantReason: "want StatusRetry with no error, not attempted"},
		{name: "hides deliveries past a failed one of its key", flaw: hidesAttempts, check: "NoDeliveryAfterFailedKey", wantReason: "in the same Write: it must not be attempted"},
		{name: "results past a failed delivery of its key", flaw: deliversPastFailure, check: "PermanentFailure", wantReason: "want StatusRetry with no error, not attempted"},
		{name: "retries a refusal", flaw: refusalAsRetry, check: "PermanentFailure", wantReason: "want StatusFailed"},
		{name: "dead-letters a transient failure", flaw: retryAsFailure, check: "RetryThenSuccess", wantReason: "want StatusRetry"},
		{name: "fails without a reason", flaw: failsWithoutReason, check: "PermanentFailure", wantReason: "failed with no error"},
		{name: "breaks the order of a key", flaw: reversesBatch, check: "WriteResults", wantReason: "events of one key must arrive in stream order"},
		{name: "breaks the order of a key under concurrency", flaw: reversesBatch, check: "OrderPerKeyUnderConcurrency", wantReason: "must arrive in stream order"},
		{name: "ignores a cancelled Write", flaw: ignoresWriteCancel, check: "CancelWriteInFlight", wantReason: "did not return within"},
		{name: "dead-letters on cancel", flaw: cancelAsFailure, check: "WriteStopsOnCancel", wantReason: "got StatusFailed"},
		{name: "claims deliveries", flaw: claimsDelivery, check: "WriteResults", wantReason: "the target did not take them"},
		{name: "leaks a goroutine", flaw: sinkLeaksGoroutine, check: "NoGoroutineLeak", wantReason: "goroutines still running after Close"},
		{name: "fails a second Close", flaw: closesOnce, check: "OpenClose", wantReason: "sink already closed"},
		{name: "fails Close after a failed Open", flaw: closesOnce, check: "CloseAfterFailedOpen", wantReason: "sink already closed"},
		{name: "cannot open after close", flaw: opensSinkOnce, check: "ReopenAfterClose", wantReason: "sink closed"},
		{name: "loses events in the runtime", flaw: claimsDelivery, check: "RedeliveryAfterCrash", wantReason: "the target did not take them"},
		{name: "retries a refusal in the runtime", flaw: refusalAsRetry, check: "DeadLetterThroughRuntime", wantReason: "the target did not take them"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := newTarget(true)
			release := make(chan struct{})
			t.Cleanup(func() { close(release) })
			h := sinkHarness(tg, 300*time.Millisecond, func() core.Sink { return &flawedSink{tg: tg, flaw: tt.flaw, release: release} })
			var failed []string
			ran := false
			for _, c := range conformance.SinkChecks(h) {
				if tt.check != "" && c.Name != tt.check {
					continue // a flaw may upset other checks too; only its own is asserted
				}
				ran = true
				r := c.Run()
				if r.Status == conformance.Failed {
					failed = append(failed, r.Name+": "+r.Reason)
				}
				if r.Name != tt.check {
					continue
				}
				if r.Status != conformance.Failed || !strings.Contains(r.Reason, tt.wantReason) {
					t.Errorf("%s: %s (%q), want fail with %q", r.Name, r.Status, r.Reason, tt.wantReason)
				}
			}
			if !ran {
				t.Fatalf("the kit has no check %q", tt.check)
			}
			if tt.check == "" && len(failed) > 0 {
				t.Errorf("checks failed on a sound sink: %v", failed)
			}
		})
	}
}

// TestSinkKitSkipsWithoutHooks shows that a harness without failure hooks
// skips the checks that need them, with the declared reasons.
func TestSinkKitSkipsWithoutHooks(t *testing.T) {
	tg := newTarget(true)
	h := conformance.SinkHarness{
		New:      func(conformance.TB) core.Sink { return core.SinkFunc(tg.take) },
		Received: tg.received,
		Capabilities: conformance.SinkCapabilities{
			FailReason: "the target cannot fail", RefuseReason: "the target takes anything", StallReason: "no way to stall it",
		},
	}
	want := map[string]string{
		"NoDeliveryAfterFailedKey": "the target cannot fail",
		"RetryThenSuccess":         "the target cannot fail",
		"PermanentFailure":         "the target takes anything",
		"CancelWriteInFlight":      "no way to stall it",
		"DeadLetterThroughRuntime": "the target takes anything",
	}
	for _, c := range conformance.SinkChecks(h) {
		r := c.Run()
		reason, skips := want[r.Name]
		switch {
		case skips && (r.Status != conformance.Skipped || !strings.Contains(r.Reason, reason)):
			t.Errorf("%s: %s (%q), want skipped with %q", r.Name, r.Status, r.Reason, reason)
		case !skips && r.Status != conformance.Passed:
			t.Errorf("%s: %s (%q), want pass", r.Name, r.Status, r.Reason)
		}
	}
}

func TestSinkHarnessProblems(t *testing.T) {
	tg := newTarget(true)
	tests := []struct {
		name string
		h    conformance.SinkHarness
		want string
	}{
		{"no Received", conformance.SinkHarness{New: func(conformance.TB) core.Sink { return core.SinkFunc(tg.take) }}, "SinkHarness.New and SinkHarness.Received are required"},
		{"Fail without Recover", conformance.SinkHarness{
			New: func(conformance.TB) core.Sink { return core.SinkFunc(tg.take) }, Received: tg.received, Fail: tg.fail,
		}, "SinkHarness.Recover is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checks := conformance.SinkChecks(tt.h)
			if len(checks) != 1 {
				t.Fatalf("%d checks, want the one saying what is missing", len(checks))
			}
			if r := checks[0].Run(); r.Status != conformance.Failed || !strings.Contains(r.Reason, tt.want) {
				t.Errorf("result %+v, want a failure saying %q", r, tt.want)
			}
		})
	}
}
