package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
)

func testSinkOpenClose(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	r.close(s)
	r.close(s) // twice is harmless
}

func testSinkCloseWithoutOpen(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	s := h.New(t)
	r.close(s)
	r.close(s)
}

// testSinkCloseAfterFailedOpen opens with a context already cancelled,
// closes, and opens the same value again, as the runtime does after an
// Open that failed.
func testSinkCloseAfterFailedOpen(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	env := h.Env(t)
	s := h.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var err error
	r.bounded("Open with a cancelled context", func() { err = s.Open(ctx, env) })
	if err != nil {
		t.Logf("Open with a cancelled context: %v", err)
	} else {
		t.Log("Open with a cancelled context succeeded")
	}
	r.close(s)
	r.close(s)
	r.open(s, env)
	defer r.close(s)
	r.deliver(s, r.deliveries(4, "a", "b"))
}

// testSinkReopen delivers, closes and opens the same value again, as the
// runtime does after a pause or an error, and delivers again.
func testSinkReopen(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	env := h.Env(t)
	s := h.New(t)
	r.open(s, env)
	r.deliver(s, r.deliveries(3, "a", "b"))
	r.close(s)
	r.open(s, env)
	defer r.close(s)
	r.deliver(s, r.deliveries(3, "a", "b"))
	r.checkOrder(r.received(), false)
}

// testSinkWriteResults writes batches of several keys, one delivery, and
// none, and checks one result per delivery and the target's order.
func testSinkWriteResults(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	if rs := r.writeNow(s, nil); len(rs) != 0 {
		t.Fatalf("Write of no deliveries returned %d results", len(rs))
	}
	r.deliver(s, r.deliveries(12, "a", "b", "c"))
	r.deliver(s, r.deliveries(1, "a"))
	r.deliver(s, r.deliveries(5, "d"))
	r.checkOrder(r.received(), false)
}

// testSinkConcurrentOrder writes from several goroutines at once, as the
// runtime does up to a sink's concurrency, each goroutine holding keys of
// its own (the runtime never gives one key to two calls at once), and
// checks that the target took every key's events in order.
func testSinkConcurrentOrder(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	const workers, rounds = 4, 5
	batches := make([][][]core.Delivery, workers)
	var all []string
	for w := range workers {
		keys := []string{fmt.Sprintf("w%d-a", w), fmt.Sprintf("w%d-b", w)}
		for range rounds {
			ds := r.deliveries(6, keys...)
			batches[w] = append(batches[w], ds)
			all = append(all, ids(ds)...)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for _, ds := range batches[w] {
				ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
				rs := s.Write(ctx, ds)
				cancel()
				// Errorf, never Fatal, off the check's goroutine.
				if !r.checkResults(ds, rs) || !r.allDelivered(ds, rs) {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	r.checkOrder(r.waitReceived(all), false)
}

// holdCase is a Write to a target that fails or refuses one delivery of
// key a (a#3, the second of a), and what it must give.
type holdCase struct {
	ds       []core.Delivery // a#1 b#2 a#3 b#4 a#5 b#6 a#7 b#8
	failed   core.Delivery   // a#3
	held     []core.Delivery // a#5 a#7: not attempted
	rs       []core.Result
	received []string
}

// writeHeld writes a batch of keys a and b while hook fails a#3, and
// checks that a#1 and every b were delivered, and that a#5 and a#7 were
// not attempted: the target, healthy for them, did not take them.
func writeHeld(r *sinkRun, s core.Sink, hook func(TB, []string)) holdCase {
	r.t.Helper()
	c := holdCase{ds: r.deliveries(8, "a", "b")}
	c.failed, c.held = c.ds[2], []core.Delivery{c.ds[4], c.ds[6]}
	r.stage(hook, []string{c.failed.Event.ID})
	c.rs = r.writeNow(s, c.ds)
	delivered := []core.Delivery{c.ds[0], c.ds[1], c.ds[3], c.ds[5], c.ds[7]}
	for _, i := range []int{0, 1, 3, 5, 7} {
		if c.rs[i].Status != core.StatusDelivered {
			r.t.Errorf("delivery %s: %s (%v); only %s failed, so the deliveries of other keys, and of a before it, must be delivered", r.label(c.ds[i]), c.rs[i].Status, c.rs[i].Err, r.label(c.failed))
		}
	}
	if c.rs[2].Status == core.StatusDelivered {
		r.t.Fatalf("delivery %s was reported delivered while the target did not take it", r.label(c.failed))
	}
	if c.rs[2].Err == nil {
		r.t.Errorf("delivery %s was attempted and not taken, with no error: Result.Err must say why", r.label(c.failed))
	}
	c.received = r.waitReceived(ids(delivered))
	r.checkNotTaken(ids(c.held), fmt.Sprintf("it came after %s of its key, which failed, in the same Write: it must not be attempted", r.label(c.failed)))
	return c
}

func testSinkHoldsKey(t TB, h SinkHarness) {
	hook := h.Refuse
	if hook == nil {
		hook = h.Fail
	}
	switch {
	case hook == nil:
		t.Skipf("the harness has neither Fail nor Refuse: %s; %s", reason(h.Capabilities.FailReason), reason(h.Capabilities.RefuseReason))
	case !h.Capabilities.Targeted:
		t.Skipf("the harness fails the whole target, not one event: %s", reason(h.Capabilities.TargetedReason))
	}
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	writeHeld(r, s, hook)
}

// testSinkRetry fails deliveries transiently, checks that the sink asks
// for a retry (never a dead letter), and that the same deliveries, sent
// again once the target recovered, arrive in order.
func testSinkRetry(t TB, h SinkHarness) {
	if h.Fail == nil {
		t.Skipf("the harness has no Fail hook: %s", reason(h.Capabilities.FailReason))
	}
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	var retry []core.Delivery
	if h.Capabilities.Targeted {
		c := writeHeld(r, s, h.Fail)
		if c.rs[2].Status != core.StatusRetry {
			t.Fatalf("delivery %s failed transiently and got %s (%v): want StatusRetry, or it is dead-lettered instead of retried", r.label(c.failed), c.rs[2].Status, c.rs[2].Err)
		}
		retry = append([]core.Delivery{c.failed}, c.held...)
	} else {
		ds := r.deliveries(6, "a", "b")
		r.stage(h.Fail, ids(ds))
		for i, res := range r.writeNow(s, ds) {
			switch {
			case res.Status != core.StatusRetry:
				t.Fatalf("delivery %s to a failing target got %s (%v): want StatusRetry", r.label(ds[i]), res.Status, res.Err)
			case i < 2 && res.Err == nil:
				t.Errorf("delivery %s was attempted and not taken, with no error: Result.Err must say why", r.label(ds[i]))
			}
		}
		r.checkNotTaken(ids(ds), "the target was failing every delivery")
		retry = ds
	}
	h.Recover(t)
	r.deliver(s, again(retry...))
	r.checkOrder(r.received(), false)
}

// testSinkRefused refuses deliveries for good, checks that the sink
// reports StatusFailed with a reason (the dead letter's), and that the
// key goes on after it.
func testSinkRefused(t TB, h SinkHarness) {
	if h.Refuse == nil {
		t.Skipf("the harness has no Refuse hook: %s", reason(h.Capabilities.RefuseReason))
	}
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	var next []core.Delivery
	if h.Capabilities.Targeted {
		c := writeHeld(r, s, h.Refuse)
		if c.rs[2].Status != core.StatusFailed {
			t.Fatalf("delivery %s was refused for good and got %s (%v): want StatusFailed, or it is retried for days instead of dead-lettered", r.label(c.failed), c.rs[2].Status, c.rs[2].Err)
		}
		next = c.held
	} else {
		ds := r.deliveries(6, "a", "b")
		r.stage(h.Refuse, ids(ds))
		rs := r.writeNow(s, ds)
		for _, i := range []int{0, 1} {
			if rs[i].Status != core.StatusFailed {
				t.Fatalf("delivery %s to a target that refuses it got %s (%v): want StatusFailed", r.label(ds[i]), rs[i].Status, rs[i].Err)
			}
		}
		next = ds[2:]
	}
	// The runtime dead-letters the refused event and goes on with its key.
	h.Recover(t)
	r.deliver(s, again(next...))
	r.checkOrder(r.received(), false)
}

// testSinkCancel writes with a context already cancelled: Write returns
// promptly, delivering nothing it does not report delivered and failing
// nothing for good; then the sink delivers as before.
func testSinkCancel(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	ds := r.deliveries(4, "a", "b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs := r.write(ctx, s, ds)
	var redo []core.Delivery
	for i, res := range rs {
		switch res.Status {
		case core.StatusFailed:
			t.Errorf("delivery %s got StatusFailed (%v) when Write's context was cancelled: want StatusRetry, or it is dead-lettered for a shutdown", r.label(ds[i]), res.Err)
		case core.StatusDelivered:
			r.waitReceived([]string{ds[i].Event.ID})
		default:
			redo = append(redo, ds[i])
		}
	}
	t.Logf("%d of %d deliveries made with a cancelled context", len(ds)-len(redo), len(ds))
	r.deliver(s, again(redo...))
	r.checkOrder(r.received(), false)
}

// testSinkCancelInFlight cancels a Write whose target stopped answering:
// Write returns within the timeout with StatusRetry for everything, and
// the sink delivers them once the target recovers.
func testSinkCancelInFlight(t TB, h SinkHarness) {
	if h.Stall == nil {
		t.Skipf("the harness has no Stall hook: %s", reason(h.Capabilities.StallReason))
	}
	r := newSinkRun(t, h)
	s := h.New(t)
	r.open(s, h.Env(t))
	defer r.close(s)
	ds := r.deliveries(4, "a", "b")
	t.Cleanup(func() { h.Recover(t) })
	h.Stall(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rs []core.Result
	done := make(chan struct{})
	go func() {
		defer close(done)
		rs = s.Write(ctx, ds)
	}()
	time.Sleep(100 * time.Millisecond) // let the Write reach the target
	cancel()
	start := time.Now()
	select {
	case <-done:
	case <-time.After(h.Timeout):
		h.Recover(t) // unblock the Write, so that it does not outlive the check
		t.Fatalf("Write did not return within %s after its context was cancelled", h.Timeout)
	}
	t.Logf("Write returned %s after its context was cancelled", time.Since(start).Round(time.Millisecond))
	if !r.checkResults(ds, rs) {
		t.Fatal("Write's results break the Sink contract")
	}
	for i, res := range rs {
		if res.Status != core.StatusRetry {
			t.Errorf("delivery %s to a target that never answered got %s (%v) when Write's context was cancelled: want StatusRetry", r.label(ds[i]), res.Status, res.Err)
		}
	}
	h.Recover(t)
	r.deliver(s, again(ds...))
}

func testSinkLeak(t TB, h SinkHarness) {
	r := newSinkRun(t, h)
	env := h.Env(t)
	base := goroutines()
	s := h.New(t)
	r.open(s, env)
	r.deliver(s, r.deliveries(3, "a", "b"))
	r.close(s)
	// A second session on the same value must leave nothing behind either.
	r.open(s, env)
	r.deliver(s, r.deliveries(3, "a", "b"))
	r.close(s)
	deadline := time.Now().Add(h.Timeout)
	for {
		leaked := leakedSince(base)
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running after Close:\n%s", len(leaked), joinStacks(leaked))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reason is a declared reason, or says there is none.
func reason(s string) string {
	if s == "" {
		return "no reason declared"
	}
	return s
}
