package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// TestStreamThatFailsToOpenRecovers: a stream whose first Opens fail is
// opened again on the same value, and connectors then run.
func TestStreamThatFailsToOpenRecovers(t *testing.T) {
	st := memstream.New()
	st.FailOpen(errors.New("dial tcp 127.0.0.1:9: connection refused"), errors.New("dial tcp 127.0.0.1:9: connection refused"))
	src := &seqSource{total: 20}
	rt, stop := runWith(t, runtime.Options{
		Stream:      st,
		StreamRetry: runtime.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		Connectors:  []runtime.Connector{{Name: "orders", Source: src, Mapper: mapper("orders", 0)}},
	})
	waitFor(t, "last ack", func() bool { return src.lastAck() == 20 })
	waitFor(t, "ready", rt.Ready)
	stop()
	if n := st.Opens(); n != 3 {
		t.Fatalf("stream opened %d times, want 3 (two failures, then success)", n)
	}
	if n := len(st.Messages("test.created")); n != 20 {
		t.Fatalf("got %d events, want 20", n)
	}
}

// flakySource fails every Read while down is set, as a polled API that is
// down, and counts its opens.
type flakySource struct {
	seqSource
	down  atomic.Bool
	opens atomic.Int64
}

func (s *flakySource) Open(ctx context.Context, env core.Env, from core.Position) error {
	s.opens.Add(1)
	return s.seqSource.Open(ctx, env, from)
}

func (s *flakySource) Read(ctx context.Context) ([]core.Change, error) {
	if s.down.Load() {
		time.Sleep(time.Millisecond)
		return nil, errors.New("GET /api/invoices: 503 Service Unavailable")
	}
	return s.seqSource.Read(ctx)
}

// TestRetryingConnectorKeepsSidecarReady: a connector retrying a transient
// error does not make the sidecar unready, is reported with its error, and
// its error is cleared once it runs again.
func TestRetryingConnectorKeepsSidecarReady(t *testing.T) {
	st := memstream.New()
	src := &flakySource{seqSource: seqSource{total: 10}}
	src.down.Store(true)
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "billing", Source: src, Mapper: mapper("billing", 0)})
	defer stop()
	waitFor(t, "a few retries", func() bool { return src.opens.Load() >= 5 })
	for range 50 {
		st := rt.Status()
		if !st.Ready {
			t.Fatalf("not ready while a connector retries a transient error: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	if s := rt.Status().Connectors[0]; s.LastError == "" || !strings.Contains(s.LastError, "503") {
		t.Fatalf("status last_error = %q, want the API's 503", s.LastError)
	}
	src.down.Store(false)
	waitFor(t, "last ack", func() bool { return src.lastAck() == 10 })
	waitFor(t, "running without error", func() bool {
		s := rt.Status().Connectors[0]
		return s.State == runtime.StateRunning && s.Error == ""
	})
	if s := rt.Status().Connectors[0]; !strings.Contains(s.LastError, "503") {
		t.Fatalf("last_error = %q after recovery, want the 503 kept as history", s.LastError)
	}
}

// TestFailedConnectorRestarts: a connector stopped by a fatal error starts
// again on Restart, from its checkpoint, without the sidecar restarting.
func TestFailedConnectorRestarts(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 30, fatalAt: 11}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "crm", Source: src, Mapper: mapper("crm", 0)})
	defer stop()
	waitFor(t, "failed", func() bool { return rt.Status().Connectors[0].State == runtime.StateFailed })
	if rt.Ready() {
		t.Fatal("ready with a failed connector")
	}
	if err := rt.Restart("nope"); !errors.Is(err, runtime.ErrNoConnector) {
		t.Fatalf("Restart of an unknown name: %v", err)
	}
	src.mu.Lock()
	src.fatalAt = 0 // an operator fixed the cause
	src.mu.Unlock()
	if err := rt.Restart("crm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "last ack", func() bool { return src.lastAck() == 30 })
	s := rt.Status().Connectors[0]
	if s.State != runtime.StateRunning || s.Error != "" || s.Restarts != 1 || !rt.Ready() {
		t.Fatalf("after restart: %+v, ready %v", s, rt.Ready())
	}
	src.mu.Lock()
	opens := append([]string(nil), src.opens...)
	src.mu.Unlock()
	if len(opens) != 2 || opens[1] != "v1:10" {
		t.Fatalf("opens = %v, want a reopen from the checkpoint v1:10", opens)
	}
}

// TestRestartReopensRunningConnector: Restart of a running connector
// drains it, closes it and opens the same source value again.
func TestRestartReopensRunningConnector(t *testing.T) {
	st := memstream.New()
	src := &seqSource{total: 10}
	rt, stop := startRuntime(t, st, runtime.Connector{Name: "crm", Source: src, Mapper: mapper("crm", 0)})
	defer stop()
	waitFor(t, "last ack", func() bool { return src.lastAck() == 10 })
	if err := rt.Restart("crm"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reopened", func() bool {
		src.mu.Lock()
		defer src.mu.Unlock()
		return len(src.opens) == 2 && src.closed == 1
	})
	waitFor(t, "running", func() bool { return rt.Status().Connectors[0].State == runtime.StateRunning })
}

// quietSource has nothing to read and confirms it caught up at a set time.
type quietSource struct {
	core.SourceFunc
	caughtUp atomic.Int64
}

func (s *quietSource) CaughtUp() time.Time { return time.Unix(0, s.caughtUp.Load()) }

// TestQuietSourceLooksFresh: a source with nothing to read that confirms it
// has caught up reports the age of that confirmation, not of a checkpoint
// it has no reason to move.
func TestQuietSourceLooksFresh(t *testing.T) {
	st := memstream.New()
	cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: "quiet", Position: core.Position{Version: 1, Data: []byte("1")}, Time: time.Now().Add(-time.Hour)}
	if err := st.Checkpoints().Save(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	src := &quietSource{SourceFunc: func(ctx context.Context) ([]core.Change, error) { <-ctx.Done(); return nil, ctx.Err() }}
	src.caughtUp.Store(time.Now().UnixNano())
	rt, stop := runWith(t, runtime.Options{
		Stream:       st,
		Connectors:   []runtime.Connector{{Name: "quiet", Source: src, Mapper: mapper("quiet", 0)}},
		Registerer:   prometheus.NewRegistry(),
		PingInterval: 10 * time.Millisecond,
	})
	defer stop()
	age := func() float64 {
		return testutil.ToFloat64(rt.Metrics().CheckpointAge.WithLabelValues("quiet"))
	}
	waitFor(t, "checkpoint age reported", func() bool { return age() > 0 })
	if a := age(); a > 60 {
		t.Fatalf("checkpoint age %.0fs for a source that caught up just now, want the age of its confirmation", a)
	}
}
