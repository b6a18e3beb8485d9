package http_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// keyOf is the partition key a binary-mode request carries.
func keyOf(r *http.Request) string { return r.Header.Get("Ce-Partitionkey") }

// TestSlowKeyDoesNotHoldOthers: while the endpoint holds the request of
// one key, the deliveries of the other keys of the same Write arrive.
func TestSlowKeyDoesNotHoldOthers(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if keyOf(r) == "slow" {
			<-release
		}
	})
	s := open(t, map[string]any{"url": rc.URL, "body": "binary", "max_concurrency": 4})
	ds := deliveries(event("slow-0", "slow", nil), event("fast-0", "fast", nil), event("fast-1", "fast", nil), event("other-0", "other", nil))
	done := make(chan []core.Result, 1)
	go func() { done <- s.Write(context.Background(), ds) }()
	want := map[string]bool{"fast-0": true, "fast-1": true, "other-0": true}
	deadline := time.After(30 * time.Second)
	for len(want) > 0 {
		select {
		case r := <-rc.arrived:
			delete(want, r.Header.Get("Ce-Id"))
		case <-deadline:
			close(release)
			t.Fatalf("deliveries %v did not arrive while key slow was held", want)
		}
	}
	close(release)
	for i, r := range <-done {
		if r.Status != core.StatusDelivered {
			t.Errorf("delivery %d: %+v", i, r)
		}
	}
}

// TestOrderPerKey: deliveries of one key reach the endpoint one after
// another, in order, never two at once, while several keys go in parallel
// and never more than max_concurrency requests are in flight.
func TestOrderPerKey(t *testing.T) {
	var mu sync.Mutex
	inFlight := map[string]int{}
	total, peak := 0, 0
	var overlaps []string
	seen := map[string][]string{}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		key := keyOf(r)
		mu.Lock()
		inFlight[key]++
		total++
		peak = max(peak, total)
		if inFlight[key] > 1 {
			overlaps = append(overlaps, key)
		}
		seen[key] = append(seen[key], r.Header.Get("Ce-Id"))
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inFlight[key]--
		total--
		mu.Unlock()
	})
	s := open(t, map[string]any{"url": rc.URL, "body": "binary", "max_concurrency": 3})
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	evs := keyed(10, keys...)
	rs := writeWithin(t, s, context.Background(), deliveries(evs...))
	for i, r := range rs {
		if r.Status != core.StatusDelivered {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(overlaps) > 0 {
		t.Errorf("keys %v had two requests in flight at once", overlaps)
	}
	if peak > 3 {
		t.Errorf("%d requests in flight at once, want at most max_concurrency 3", peak)
	}
	for _, k := range keys {
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("%s-%d", k, i))
		}
		if strings.Join(seen[k], ",") != strings.Join(want, ",") {
			t.Errorf("key %s arrived as %v, want %v", k, seen[k], want)
		}
	}
}

// TestKeyStopsAfterAFailure: once a delivery of a key is not delivered,
// its later deliveries in the call are not attempted (StatusRetry, no
// error), while other keys go on.
func TestKeyStopsAfterAFailure(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   core.Status
	}{
		{name: "retried", status: http.StatusInternalServerError, want: core.StatusRetry},
		{name: "failed", status: http.StatusUnprocessableEntity, want: core.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
				if r.Header.Get("Ce-Id") == "a-1" {
					w.WriteHeader(tt.status)
				}
			})
			s := open(t, map[string]any{"url": rc.URL, "body": "binary"})
			evs := keyed(4, "a", "b") // a-0 b-0 a-1 b-1 a-2 b-2 a-3 b-3
			rs := writeWithin(t, s, context.Background(), deliveries(evs...))
			for i, ev := range evs {
				want := core.Result{Status: core.StatusDelivered}
				switch ev.ID {
				case "a-1":
					want.Status = tt.want
				case "a-2", "a-3":
					want.Status = core.StatusRetry
				}
				if rs[i].Status != want.Status {
					t.Errorf("%s: status %v, want %v", ev.ID, rs[i].Status, want.Status)
				}
				if (rs[i].Err != nil) != (ev.ID == "a-1") {
					t.Errorf("%s: err %v", ev.ID, rs[i].Err)
				}
			}
			for _, r := range rc.requests() {
				if id := r.Header.Get("Ce-Id"); id == "a-2" || id == "a-3" {
					t.Errorf("%s was sent after a-1 was not delivered", id)
				}
			}
		})
	}
}

// TestCancelReturnsPromptly: cancelling Write's context ends the request
// in flight and returns StatusRetry for everything not delivered.
func TestCancelReturnsPromptly(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	s := open(t, map[string]any{"url": rc.URL, "body": "binary", "max_concurrency": 2})
	ctx, cancel := context.WithCancel(context.Background())
	evs := keyed(3, "a", "b", "c")
	done := make(chan []core.Result, 1)
	go func() { done <- s.Write(ctx, deliveries(evs...)) }()
	select {
	case <-rc.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no request arrived")
	}
	cancel()
	var rs []core.Result
	select {
	case rs = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write did not return after its context was cancelled")
	}
	cancelled := 0
	for i, r := range rs {
		if r.Status != core.StatusRetry {
			t.Errorf("%s: status %v, want retry", evs[i].ID, r.Status)
		}
		if errors.Is(r.Err, context.Canceled) {
			cancelled++
		} else if r.Err != nil {
			t.Errorf("%s: err %v", evs[i].ID, r.Err)
		}
	}
	if cancelled == 0 || cancelled > 2 {
		t.Errorf("%d results say the context was cancelled, want the 1 or 2 in flight", cancelled)
	}
}

// TestRateLimit: rate_limit spaces the requests to the endpoint, across
// keys.
func TestRateLimit(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{"url": rc.URL, "rate_limit": 20, "rate_burst": 1, "max_concurrency": 4})
	start := time.Now()
	rs := writeWithin(t, s, context.Background(), deliveries(keyed(1, "a", "b", "c", "d", "e")...))
	elapsed := time.Since(start)
	for i, r := range rs {
		if r.Status != core.StatusDelivered {
			t.Fatalf("delivery %d: %+v", i, r)
		}
	}
	// 5 requests at 20 per second with a burst of 1: the last waits 4
	// intervals of 50ms. Only a lower bound: a slow machine takes longer.
	if elapsed < 190*time.Millisecond {
		t.Errorf("5 requests took %v; at 20/s they take at least 200ms", elapsed)
	}
}

// TestRateLimitWaitEndsWithContext: a delivery waiting for the rate limit
// when the context ends is not attempted.
func TestRateLimitWaitEndsWithContext(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{"url": rc.URL, "rate_limit": 0.001, "rate_burst": 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rs := writeWithin(t, s, ctx, deliveries(event("a-0", "a", nil), event("b-0", "b", nil)))
	delivered := 0
	for _, r := range rs {
		switch r.Status {
		case core.StatusDelivered:
			delivered++
		case core.StatusRetry:
		default:
			t.Errorf("result %+v", r)
		}
	}
	if delivered != 1 || len(rc.requests()) != 1 {
		t.Errorf("%d delivered, %d requests; want the burst of 1 only", delivered, len(rc.requests()))
	}
}

// TestWriteWhenNotOpen: a Write before Open or after Close delivers
// nothing and asks for a retry.
func TestWriteWhenNotOpen(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{"url": rc.URL})
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	rs := s.Write(context.Background(), deliveries(event("e-1", "A-1", nil)))
	if rs[0].Status != core.StatusRetry || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "not open") {
		t.Errorf("result = %+v, want a retry saying the sink is not open", rs[0])
	}
	if len(rc.requests()) != 0 {
		t.Error("a closed sink sent a request")
	}
	// Open after Close starts afresh.
	if err := s.Open(context.Background(), core.Env{Name: "orders_out"}); err != nil {
		t.Fatal(err)
	}
	if rs := s.Write(context.Background(), deliveries(event("e-1", "A-1", nil))); rs[0].Status != core.StatusDelivered {
		t.Errorf("after reopening: %+v", rs[0])
	}
}

// TestCloseWaitsForWrites: Close returns once the Writes in flight have
// returned, and within its context's deadline when they do not.
func TestCloseWaitsForWrites(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { <-release })
	s := open(t, map[string]any{"url": rc.URL})
	done := make(chan []core.Result, 1)
	go func() { done <- s.Write(context.Background(), deliveries(event("e-1", "A-1", nil))) }()
	<-rc.arrived
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a write in flight = %v, want the deadline", err)
	}
	close(release)
	if r := (<-done)[0]; r.Status != core.StatusDelivered {
		t.Errorf("the write in flight: %+v", r)
	}
}
