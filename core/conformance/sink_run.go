package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tributary/tributary/core"
)

// sinkRun is one sink check's events and what it expects of them. Its ids
// are the check's own, so that a target shared by several checks serves
// them all.
type sinkRun struct {
	t     TB
	h     SinkHarness
	nonce string
	seq   int
	// key and seq of each event the check made, by id.
	keys map[string]string
	seqs map[string]int
}

func newSinkRun(t TB, h SinkHarness) *sinkRun {
	return &sinkRun{t: t, h: h, nonce: uuid.NewString(), keys: map[string]string{}, seqs: map[string]int{}}
}

// deliveries makes n new events whose partition keys take turns among
// keys, in stream order, as their deliveries.
func (r *sinkRun) deliveries(n int, keys ...string) []core.Delivery {
	out := make([]core.Delivery, n)
	for i := range out {
		out[i] = r.delivery(keys[i%len(keys)])
	}
	return out
}

// delivery makes one new event of key, as its first delivery.
func (r *sinkRun) delivery(key string) core.Delivery {
	r.seq++
	id := core.EventID("conformance-"+r.nonce, core.Position{Version: 1, Data: []byte(strconv.Itoa(r.seq))}, "sink")
	data, _ := json.Marshal(map[string]any{"key": key, "seq": r.seq})
	ev := &core.Event{
		ID:              id,
		Source:          "/tributary/conformance",
		SpecVersion:     core.SpecVersion,
		Type:            "dev.tributary.conformance.delivered",
		Subject:         key + "/" + strconv.Itoa(r.seq),
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
		PartitionKey:    key,
	}
	r.keys[id], r.seqs[id] = key, r.seq
	d := core.Delivery{Event: ev}
	if r.h.Data != nil {
		d.Data = r.h.Data(ev)
	}
	return d
}

// again returns ds as the runtime sends them after a failed attempt.
func again(ds ...core.Delivery) []core.Delivery {
	out := slices.Clone(ds)
	for i := range out {
		out[i].Attempt++
	}
	return out
}

// label names a delivery in messages: its key and place in stream order.
func (r *sinkRun) label(d core.Delivery) string {
	return fmt.Sprintf("%s#%d", r.keys[d.Event.ID], r.seqs[d.Event.ID])
}

func (r *sinkRun) labels(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprintf("%s#%d", r.keys[id], r.seqs[id])
	}
	return "[" + strings.Join(out, " ") + "]"
}

func ids(ds []core.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Event.ID
	}
	return out
}

// bounded runs f and fails the check when it does not return within the
// harness's timeout. A panic in f fails the check too.
func (r *sinkRun) bounded(what string, f func()) {
	r.t.Helper()
	done := make(chan string, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
			}
		}()
		f()
		done <- ""
	}()
	timer := time.NewTimer(r.h.Timeout)
	defer timer.Stop()
	select {
	case msg := <-done:
		if msg != "" {
			r.t.Fatalf("%s: %s", what, msg)
		}
	case <-timer.C:
		r.t.Fatalf("%s did not return within %s", what, r.h.Timeout)
	}
}

func (r *sinkRun) open(s core.Sink, env core.Env) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), r.h.Timeout)
	defer cancel()
	var err error
	r.bounded("Open", func() { err = s.Open(ctx, env) })
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
}

func (r *sinkRun) close(s core.Sink) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), r.h.Timeout)
	defer cancel()
	var err error
	r.bounded("Close", func() { err = s.Close(ctx) })
	if err != nil {
		r.t.Fatalf("Close: %v", err)
	}
}

// write calls Write with ctx, failing the check when it does not return
// within the timeout, and checks the results against the contract.
func (r *sinkRun) write(ctx context.Context, s core.Sink, ds []core.Delivery) []core.Result {
	r.t.Helper()
	var rs []core.Result
	r.bounded(fmt.Sprintf("Write of %d deliveries", len(ds)), func() { rs = s.Write(ctx, ds) })
	if !r.checkResults(ds, rs) {
		r.t.Fatal("Write's results break the Sink contract")
	}
	return rs
}

// writeNow is write with a context bounded by the timeout.
func (r *sinkRun) writeNow(s core.Sink, ds []core.Delivery) []core.Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), r.h.Timeout)
	defer cancel()
	return r.write(ctx, s, ds)
}

// deliver writes ds to a healthy target and checks that every delivery was
// made and taken.
func (r *sinkRun) deliver(s core.Sink, ds []core.Delivery) {
	r.t.Helper()
	rs := r.writeNow(s, ds)
	if !r.allDelivered(ds, rs) {
		r.t.Fatal("a healthy target did not get every delivery")
	}
	r.waitReceived(ids(ds))
}

// allDelivered reports whether every result is StatusDelivered, failing
// the check for each that is not.
func (r *sinkRun) allDelivered(ds []core.Delivery, rs []core.Result) bool {
	r.t.Helper()
	ok := true
	for i, res := range rs {
		if res.Status != core.StatusDelivered {
			r.t.Errorf("delivery %s to a healthy target: %s (%v), want delivered", r.label(ds[i]), res.Status, res.Err)
			ok = false
		}
	}
	return ok
}

// checkResults checks one Write's results against the contract: one per
// delivery; a reason for each refusal; and once a delivery of a key is not
// delivered, the later ones of the key in the call not attempted
// (StatusRetry with no error). It reports every problem and whether there
// was none.
func (r *sinkRun) checkResults(ds []core.Delivery, rs []core.Result) bool {
	r.t.Helper()
	if len(rs) != len(ds) {
		r.t.Errorf("Write of %d deliveries returned %d results: it must return one per delivery, in the order of the deliveries", len(ds), len(rs))
		return false
	}
	ok := true
	held := map[string]string{} // key -> the delivery that was not delivered
	for i, d := range ds {
		res, key := rs[i], d.Event.PartitionKey
		if first, isHeld := held[key]; isHeld {
			if res.Status != core.StatusRetry || res.Err != nil {
				r.t.Errorf("delivery %s came after %s of its key, which was not delivered, and got %s (%v): want StatusRetry with no error, not attempted, so that the key stays in order", r.label(d), first, res.Status, res.Err)
				ok = false
			}
			continue
		}
		switch res.Status {
		case core.StatusDelivered:
			if res.Err != nil {
				r.t.Errorf("delivery %s is delivered with an error (%v): Err is nil when delivered", r.label(d), res.Err)
				ok = false
			}
		case core.StatusFailed:
			if res.Err == nil {
				r.t.Errorf("delivery %s failed with no error: Result.Err must say why, for the dead letter", r.label(d))
				ok = false
			}
			held[key] = r.label(d)
		case core.StatusRetry:
			held[key] = r.label(d)
		default:
			r.t.Errorf("delivery %s has unknown status %d", r.label(d), res.Status)
			ok = false
		}
	}
	return ok
}

// received returns the ids of this check's events the target took, in
// the order it took them.
func (r *sinkRun) received() []string {
	var out []string
	for _, d := range r.h.Received() {
		if _, mine := r.keys[d.ID]; mine {
			out = append(out, d.ID)
		}
	}
	return out
}

// waitReceived waits until the target took every id in want, and returns
// what it took of this check's events.
func (r *sinkRun) waitReceived(want []string) []string {
	r.t.Helper()
	deadline := time.Now().Add(r.h.Timeout)
	for {
		got := r.received()
		missing := missingFrom(got, want)
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("Write reported %s delivered, but within %s the target did not take them (it took %s)", r.labels(missing), r.h.Timeout, r.labels(got))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func missingFrom(got, want []string) []string {
	have := map[string]bool{}
	for _, id := range got {
		have[id] = true
	}
	var missing []string
	for _, id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// checkOrder checks that got, what the target took, holds the events of
// each key in stream order. With dups false, an event taken twice is an
// error; with dups true (after a crash) it may come again, but no event of
// a key may come before an earlier one of the key first arrived.
func (r *sinkRun) checkOrder(got []string, dups bool) {
	r.t.Helper()
	last := map[string]int{}
	seen := map[string]bool{}
	for _, id := range got {
		key, seq := r.keys[id], r.seqs[id]
		if seen[id] {
			if !dups {
				r.t.Errorf("the target took %s twice", r.labels([]string{id}))
			}
			continue
		}
		seen[id] = true
		if seq < last[key] {
			r.t.Errorf("the target took %s after %s#%d: events of one key must arrive in stream order (it took %s)", r.labels([]string{id}), key, last[key], r.labels(got))
			return
		}
		last[key] = seq
	}
}

// checkNotTaken fails the check for each id in ids the target took.
func (r *sinkRun) checkNotTaken(ids []string, why string) {
	r.t.Helper()
	got := map[string]bool{}
	for _, id := range r.received() {
		got[id] = true
	}
	for _, id := range ids {
		if got[id] {
			r.t.Errorf("the target took %s: %s", r.labels([]string{id}), why)
		}
	}
}

// stage calls a failure hook and makes the target recover when the check
// ends, whatever happens.
func (r *sinkRun) stage(hook func(TB, []string), ids []string) {
	r.t.Cleanup(func() { r.h.Recover(r.t) })
	hook(r.t, ids)
}
