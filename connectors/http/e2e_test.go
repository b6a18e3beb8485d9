package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

const e2eType = "com.example.order.accepted"

// runtimeWith runs the sink runtime on a memory stream holding evs, with
// one http sink named warehouse configured by values, and returns the
// runtime and the stream.
func runtimeWith(t *testing.T, values map[string]any, edit func(*runtime.Sink), evs ...*core.Event) (*runtime.Runtime, *memstream.Stream) {
	t.Helper()
	st := memstream.New()
	for _, ev := range evs {
		if err := st.Publisher().Publish("events."+ev.Type, ev.ToMessage()); err != nil {
			t.Fatal(err)
		}
	}
	s := sink.New()
	if err := s.Configure(core.NewConfig("warehouse", values)); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	rs := runtime.Sink{Name: "warehouse", Type: sink.Type, Sink: s, From: core.FromBeginning}
	if edit != nil {
		edit(&rs)
	}
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "per_type", Prefix: "events."},
		EventTypes:      []string{e2eType},
		Sinks:           []runtime.Sink{rs},
		Registerer:      prometheus.NewRegistry(),
		ShutdownTimeout: 4 * time.Second,
		DrainTimeout:    2 * time.Second,
	})
	if err != nil {
		t.Fatalf("runtime.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return within 15s of the cancel")
		}
	})
	return r, st
}

func warehouse(t *testing.T, r *runtime.Runtime) runtime.SinkStatus {
	t.Helper()
	for _, s := range r.Status().Sinks {
		if s.Name == "warehouse" {
			return s
		}
	}
	t.Fatal("no sink warehouse in the status")
	return runtime.SinkStatus{}
}

// eventually waits up to 20s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestThroughTheRuntime: events on the stream reach the endpoint through
// the sink runtime, mapped, each key in order.
func TestThroughTheRuntime(t *testing.T) {
	var mu sync.Mutex
	perKey := map[string][]int{}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var b struct {
			Order string `json:"order"`
			Seq   int    `json:"seq"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		perKey[b.Order] = append(perKey[b.Order], b.Seq)
		mu.Unlock()
	})
	var evs []*core.Event
	for i := range 25 {
		for _, k := range []string{"A-1", "A-2", "A-3", "A-4"} {
			evs = append(evs, event(fmt.Sprintf("%s-%d", k, i), k, map[string]any{"order_id": k, "seq": i}))
		}
	}
	mapData := func(ev *core.Event) (any, error) {
		var d map[string]any
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return nil, err
		}
		return map[string]any{"order": d["order_id"], "seq": d["seq"]}, nil
	}
	r, _ := runtimeWith(t, map[string]any{"url": rc.URL + "/orders/{{ event.subject }}", "body": "mapped", "signing_secrets": []any{swSecret}},
		func(s *runtime.Sink) { s.Map, s.Concurrency, s.MaxBatch = mapData, 4, 8 }, evs...)
	eventually(t, "every event delivered", func() bool { return warehouse(t, r).Delivered == uint64(len(evs)) })
	mu.Lock()
	defer mu.Unlock()
	for k, seqs := range perKey {
		for i, n := range seqs {
			if n != i {
				t.Fatalf("key %s arrived as %v, want 0..24 in order", k, seqs)
			}
		}
	}
	for _, req := range rc.requests() {
		if !strings.HasPrefix(req.URI, "/orders/A-") || req.Header.Get("Webhook-Signature") == "" {
			t.Fatalf("request %s %v", req.URI, req.Header)
		}
	}
}

// TestGoneStopsTheSink: a 410 stops the sink (state failed) with the
// reason, and nothing is dead-lettered.
func TestGoneStopsTheSink(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) { w.WriteHeader(http.StatusGone) })
	r, st := runtimeWith(t, map[string]any{"url": rc.URL}, nil, event("e-1", "A-1", nil))
	eventually(t, "the sink failed", func() bool { return warehouse(t, r).State == runtime.StateFailed })
	if s := warehouse(t, r); !strings.Contains(s.Error, "the endpoint answered 410 Gone: it was removed; fix url and restart the sink") {
		t.Errorf("status error = %q", s.Error)
	}
	if n := len(st.Messages("tributary.deadletter")); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestRetryAfterReplacesTheSchedule: a 429's Retry-After decides when the
// event goes again, instead of the schedule's hour.
func TestRetryAfterReplacesTheSchedule(t *testing.T) {
	var mu sync.Mutex
	var attempts []time.Time
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	r, _ := runtimeWith(t, map[string]any{"url": rc.URL}, func(s *runtime.Sink) { s.Retry = []time.Duration{time.Hour} }, event("e-1", "A-1", nil))
	eventually(t, "the event delivered", func() bool { return warehouse(t, r).Delivered == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 || attempts[1].Sub(attempts[0]) < 900*time.Millisecond {
		t.Errorf("attempts at %v, want two, a second apart", attempts)
	}
}

// TestRefusedEventIsDeadLettered: a 422 dead-letters the event with the
// endpoint's answer, and the next event of the key is delivered.
func TestRefusedEventIsDeadLettered(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if strings.HasSuffix(r.URL.Path, "/e-1") {
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = w.Write([]byte(`{"error":"unknown sku"}`))
		}
	})
	r, st := runtimeWith(t, map[string]any{"url": rc.URL + "/{{ event.id }}"}, nil, event("e-1", "A-1", nil), event("e-2", "A-1", nil))
	eventually(t, "one delivered, one dead-lettered", func() bool {
		s := warehouse(t, r)
		return s.Delivered == 1 && s.DeadLettered == 1
	})
	msgs := st.Messages("tributary.deadletter")
	if len(msgs) != 1 {
		t.Fatalf("%d dead letters", len(msgs))
	}
	ev, err := core.EventFromMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	var dl runtime.DeadLetter
	if err := json.Unmarshal(ev.Data, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Sink != "warehouse" || dl.Response != "HTTP/1.1 422 Unprocessable Entity\n{\"error\":\"unknown sku\"}" || !strings.Contains(dl.Error, "422") {
		t.Errorf("dead letter = %+v", dl)
	}
}
