package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
)

// received is one request as a receiver saw it.
type received struct {
	Method string
	URI    string
	Header http.Header
	Body   []byte
}

// receiver is an HTTP endpoint started by a test that records every
// request and answers with answer (200 when nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	answer func(w http.ResponseWriter, r *http.Request, body []byte)
	// arrived gets each request's record as it arrives, when not nil;
	// sends never block.
	arrived chan received
}

func newReceiver(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer, arrived: make(chan received, 1024)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec := received{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, rec)
		rc.mu.Unlock()
		select {
		case rc.arrived <- rec:
		default:
		}
		if rc.answer != nil {
			rc.answer(w, r, body)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// requests returns the requests received so far.
func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// open configures an http sink with values (url defaults to the
// receiver's), opens it, and closes it when the test ends.
func open(t *testing.T, values map[string]any) *sink.Sink {
	t.Helper()
	return openWith(t, sink.New(), values)
}

func openWith(t *testing.T, s *sink.Sink, values map[string]any) *sink.Sink {
	t.Helper()
	if err := s.Configure(core.NewConfig("orders_out", values)); err != nil {
		t.Fatalf("Configure() = %v", err)
	}
	if err := s.Open(context.Background(), core.Env{Name: "orders_out"}); err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// event returns an order event of key with data.
func event(id, key string, data any) *core.Event {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return &core.Event{
		ID:              id,
		Source:          "/tributary/erp_orders",
		SpecVersion:     core.SpecVersion,
		Type:            "com.example.order.accepted",
		Subject:         key,
		Time:            time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC),
		DataContentType: "application/json",
		Data:            b,
		PartitionKey:    key,
	}
}

// deliveries wraps events.
func deliveries(evs ...*core.Event) []core.Delivery {
	out := make([]core.Delivery, len(evs))
	for i, ev := range evs {
		out[i] = core.Delivery{Event: ev}
	}
	return out
}

// keyed returns n events of each key, ids "<key>-<i>", in the order key
// by key interleaved: a-0, b-0, a-1, b-1, ...
func keyed(n int, keys ...string) []*core.Event {
	var out []*core.Event
	for i := range n {
		for _, k := range keys {
			out = append(out, event(fmt.Sprintf("%s-%d", k, i), k, map[string]any{"order_id": k, "seq": i}))
		}
	}
	return out
}

// writeWithin calls Write and fails the test when it does not return within
// a generous bound.
func writeWithin(t *testing.T, s *sink.Sink, ctx context.Context, ds []core.Delivery) []core.Result {
	t.Helper()
	done := make(chan []core.Result, 1)
	go func() { done <- s.Write(ctx, ds) }()
	select {
	case rs := <-done:
		if len(rs) != len(ds) {
			t.Fatalf("Write returned %d results for %d deliveries", len(rs), len(ds))
		}
		return rs
	case <-time.After(30 * time.Second):
		t.Fatal("Write did not return within 30s")
		return nil
	}
}
