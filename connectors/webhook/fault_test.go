package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	connector "github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// TestStreamOutage runs steady deliveries through the runtime while the
// stream fails every publish for a while: deliveries answered 2xx must all
// arrive, once each by event id, and deliveries answered otherwise (503
// once the inbox is full) must never be emitted.
func TestStreamOutage(t *testing.T) {
	const (
		total      = 240
		outageFrom = 40
		outageTo   = 160
		maxPending = 25
	)
	dir := t.TempDir()
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()

	src := connector.New()
	err := src.Configure(core.NewConfig("orders", map[string]any{
		"path":        "/hooks/orders",
		"dedup":       map[string]any{"header": "X-Request-Id"},
		"max_pending": maxPending,
	}))
	if err != nil {
		t.Fatal(err)
	}
	stream := memstream.New()
	mapper := runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		return []runtime.Output{{Rule: "received", Event: &core.Event{
			ID: core.EventID("orders", ch.Position, "received"), Source: "/tributary/orders",
			SpecVersion: core.SpecVersion, Type: "com.example.order.received",
			DataContentType: "application/json", Data: ch.Raw,
		}}}
	})
	rt, err := runtime.New(runtime.Options{
		Stream:          stream,
		Topics:          runtime.Topics{Mode: "single", Name: "events"},
		Connectors:      []runtime.Connector{{Name: "orders", Type: connector.Type, Source: src, Mapper: mapper, Retry: runtime.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond}}},
		StateDir:        dir,
		HTTP:            router,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime shutdown: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for rt.Status().Connectors[0].State != runtime.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("connector not running: %+v", rt.Status().Connectors[0])
		}
		time.Sleep(5 * time.Millisecond)
	}

	status := map[string]int{}
	refused := 0
	for i := range total {
		switch i {
		case outageFrom:
			stream.FailNext(1<<30, nil)
		case outageTo:
			stream.FailNext(0, nil)
		}
		id := fmt.Sprint("d-", i)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/orders", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("post %s: %v", id, err)
		}
		resp.Body.Close()
		status[id] = resp.StatusCode
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			refused++
		}
	}
	if refused == 0 {
		t.Fatalf("no delivery was refused during the outage; the inbox never filled")
	}
	want := map[string]bool{}
	for id, code := range status {
		if code == 200 {
			want[core.EventID("orders", core.Position{Version: 1, Data: []byte(id)}, "received")] = true
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := stream.WaitLen(wctx, len(want)); err != nil {
		t.Fatalf("waiting for %d events: %v (have %d)", len(want), err, stream.Len())
	}
	got := map[string]bool{}
	for _, m := range stream.Messages("events") {
		got[m.UUID] = true
	}
	for id := range want {
		if !got[id] {
			t.Errorf("event %s of a 2xx delivery never arrived", id)
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("event %s arrived but its delivery was not answered 2xx", id)
		}
	}
	t.Logf("%d deliveries: %d accepted, %d refused with 503, %d events (%d distinct)",
		total, len(want), refused, stream.Len(), len(got))
}
