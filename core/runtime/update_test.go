package runtime_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// TestApplyReplacesOnlyWhatItNames: Apply replaces one connector (the old
// one drains and closes, the new one opens from its checkpoint), adds
// one and removes one, while the connector it does not name keeps its
// session and its counters.
func TestApplyReplacesOnlyWhatItNames(t *testing.T) {
	st := memstream.New()
	keep := &seqSource{total: 10}
	old := &seqSource{total: 10}
	gone := &seqSource{total: 10}
	rt, stop := startRuntime(t, st,
		runtime.Connector{Name: "keep", Source: keep, Mapper: mapper("keep", 0)},
		runtime.Connector{Name: "changed", Source: old, Mapper: mapper("changed", 0)},
		runtime.Connector{Name: "gone", Source: gone, Mapper: mapper("gone", 0)},
	)
	defer stop()
	waitFor(t, "every ack 10", func() bool { return keep.lastAck() == 10 && old.lastAck() == 10 && gone.lastAck() == 10 })

	replacement := &seqSource{total: 15}
	added := &seqSource{total: 3}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rt.Apply(ctx, runtime.Update{
		Connectors: []runtime.Connector{
			{Name: "changed", Source: replacement, Mapper: mapper("changed", 0)},
			{Name: "added", Source: added, Mapper: mapper("added", 0)},
		},
		RemoveConnectors: []string{"gone"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replacement's ack 15", func() bool { return replacement.lastAck() == 15 })
	waitFor(t, "the added one's ack 3", func() bool { return added.lastAck() == 3 })
	old.mu.Lock()
	oldClosed := old.closed
	old.mu.Unlock()
	gone.mu.Lock()
	goneClosed := gone.closed
	gone.mu.Unlock()
	keep.mu.Lock()
	keepOpens, keepClosed := len(keep.opens), keep.closed
	keep.mu.Unlock()
	if oldClosed != 1 || goneClosed != 1 || keepOpens != 1 || keepClosed != 0 {
		t.Errorf("closed: old %d, gone %d, kept %d (opened %d); want 1, 1, 0 (1)", oldClosed, goneClosed, keepClosed, keepOpens)
	}
	replacement.mu.Lock()
	from := replacement.opens
	replacement.mu.Unlock()
	if len(from) != 1 || from[0] != "v1:10" {
		t.Errorf("the replacement opened from %v, want the checkpoint v1:10", from)
	}
	var names []string
	for _, c := range rt.Status().Connectors {
		names = append(names, c.Name)
		if c.Name == "keep" && c.EventsEmitted != 10 {
			t.Errorf("the kept connector's counter is %d, want 10 (not reset)", c.EventsEmitted)
		}
	}
	if got := names; len(got) != 3 || got[0] != "keep" || got[1] != "changed" || got[2] != "added" {
		t.Errorf("status lists %v, want [keep changed added]", got)
	}
}

func TestApplyRefusesAWrongUpdateWhole(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 1}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "a", Source: src, Mapper: mapper("a", 0)})
	defer stop()
	waitFor(t, "ack 1", func() bool { return src.lastAck() == 1 })
	tests := []struct {
		name string
		u    runtime.Update
		is   error
	}{
		{name: "remove unknown connector", u: runtime.Update{
			Connectors:       []runtime.Connector{{Name: "a", Source: &seqSource{}, Mapper: mapper("a", 0)}},
			RemoveConnectors: []string{"nope"},
		}, is: runtime.ErrNoConnector},
		{name: "remove unknown sink", u: runtime.Update{RemoveSinks: []string{"nope"}}, is: runtime.ErrNoSink},
		{name: "connector without source", u: runtime.Update{Connectors: []runtime.Connector{{Name: "a", Mapper: mapper("a", 0)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rt.Apply(context.Background(), tt.u)
			if err == nil || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Apply: %v, want an error (wrapping %v)", err, tt.is)
			}
		})
	}
	src.mu.Lock()
	closed := src.closed
	src.mu.Unlock()
	if closed != 0 {
		t.Errorf("a refused update closed the running connector (%d)", closed)
	}
}

func TestApplyBeforeRun(t *testing.T) {
	rt, err := runtime.New(runtime.Options{Stream: memstream.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := rt.Apply(ctx, runtime.Update{}); !errors.Is(err, runtime.ErrNotRunning) {
		t.Fatalf("Apply before Run: %v, want ErrNotRunning", err)
	}
}

// TestApplyReplacesAndAddsSinks: a replaced sink goes on from its group's
// committed offsets (nothing delivered twice, nothing skipped), an added
// one starts where its configuration says, and the old one is closed.
func TestApplyReplacesAndAddsSinks(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	publishEvents(t, st, sinkEvent(typ, "a", 0), sinkEvent(typ, "b", 1))
	oldSink := &recSink{}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: oldSink, From: core.FromBeginning})
	eventually(t, "2 delivered", func() bool { return len(oldSink.deliveredIDs()) == 2 })

	newSink, added := &recSink{}, &recSink{}
	err := run.r.Apply(context.Background(), runtime.Update{Sinks: []runtime.Sink{
		{Name: "wms", Sink: newSink, From: core.FromBeginning},
		{Name: "audit", Sink: added, From: core.FromBeginning},
	}})
	if err != nil {
		t.Fatal(err)
	}
	publishEvents(t, st, sinkEvent(typ, "a", 2))
	eventually(t, "the replacement delivers the new event", func() bool { return len(newSink.deliveredIDs()) == 1 })
	eventually(t, "the added sink delivers all 3", func() bool { return len(added.deliveredIDs()) == 3 })
	time.Sleep(100 * time.Millisecond)
	if got := newSink.deliveredIDs(); len(got) != 1 || got[0] != typ+"/a/2" {
		t.Errorf("the replacement delivered %v, want only the event after the old one's", got)
	}
	oldSink.mu.Lock()
	closes := oldSink.closes
	oldSink.mu.Unlock()
	if closes != 1 {
		t.Errorf("the old sink was closed %d times, want 1", closes)
	}
	if got := len(run.r.Status().Sinks); got != 2 {
		t.Errorf("%d sinks in status, want 2", got)
	}
}

// TestApplyEventTypesForNewSinks: an update's event types (a new
// catalog) give a sink it starts the topics of the new types its globs
// match.
func TestApplyEventTypesForNewSinks(t *testing.T) {
	st := memstream.New()
	run := runSinks(t, st, []string{"com.acme.order"}, nil)
	sink := &recSink{}
	err := run.r.Apply(context.Background(), runtime.Update{
		EventTypes: []string{"com.acme.order", "com.acme.invoice"},
		Sinks:      []runtime.Sink{{Name: "all", Sink: sink, Types: []string{"com.acme.*"}, From: core.FromBeginning}},
	})
	if err != nil {
		t.Fatal(err)
	}
	publishEvents(t, st, sinkEvent("com.acme.invoice", "a", 0), sinkEvent("com.acme.order", "b", 1))
	eventually(t, "both types delivered", func() bool { return len(sink.deliveredIDs()) == 2 })
}

// TestRestartSink: a restarted sink closes, opens again and goes on from
// its group's committed offsets: nothing delivered twice, nothing
// skipped.
func TestRestartSink(t *testing.T) {
	const typ = "com.acme.order"
	st := memstream.New()
	publishEvents(t, st, sinkEvent(typ, "a", 0))
	sink := &recSink{}
	run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "wms", Sink: sink, From: core.FromBeginning})
	eventually(t, "the first delivered", func() bool { return len(sink.deliveredIDs()) == 1 })
	if err := run.r.RestartSink("wms"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "reopened", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.opens == 2 && sink.closes == 1
	})
	publishEvents(t, st, sinkEvent(typ, "b", 1))
	eventually(t, "the second delivered", func() bool { return len(sink.deliveredIDs()) == 2 })
	time.Sleep(100 * time.Millisecond)
	if got := sink.deliveredIDs(); len(got) != 2 || got[0] == got[1] {
		t.Errorf("delivered %v, want each event once", got)
	}
	if err := run.r.RestartSink("nope"); !errors.Is(err, runtime.ErrNoSink) {
		t.Errorf("RestartSink of an unknown sink: %v", err)
	}
}

// hookSource mounts one route while open.
type hookSource struct {
	seqSource
	unmount func()
}

func (s *hookSource) Routes() []string { return []string{"POST /hooks/gone"} }

func (s *hookSource) Open(ctx context.Context, env core.Env, from core.Position) error {
	u, err := env.HTTP.Handle("POST /hooks/gone", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	if err != nil {
		return err
	}
	s.unmount = u
	return s.seqSource.Open(ctx, env, from)
}

func (s *hookSource) Close(ctx context.Context) error {
	if s.unmount != nil {
		s.unmount()
	}
	return s.seqSource.Close(ctx)
}

// TestApplyReleasesRemovedRoutes: a removed connector's HTTP routes
// answer 404, not "retry later".
func TestApplyReleasesRemovedRoutes(t *testing.T) {
	router := runtime.NewRouter()
	src := &hookSource{}
	rt, stop := runWith(t, runtime.Options{Stream: memstream.New(), HTTP: router,
		Connectors: []runtime.Connector{{Name: "gone", Source: src, Mapper: mapper("gone", 0)}}})
	defer stop()
	serve := func() int {
		w := httptest.NewRecorder()
		router.ServeHTTP(w, httptest.NewRequest("POST", "/hooks/gone", nil))
		return w.Code
	}
	waitFor(t, "the route mounted", func() bool { return serve() == http.StatusAccepted })
	if err := rt.Apply(context.Background(), runtime.Update{RemoveConnectors: []string{"gone"}}); err != nil {
		t.Fatal(err)
	}
	if c := serve(); c != http.StatusNotFound {
		t.Fatalf("the removed connector's route answered %d, want 404", c)
	}
}
