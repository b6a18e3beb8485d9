package poll_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/metricstest"
)

// scrape returns the series name{labels} of reg; see metricstest.Value.
func scrape(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return metricstest.Value(t, reg, name, labels)
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunSeriesAndCaughtUp: each successful run sets the last-success time
// (the series and CaughtUp) and is timed; a failed run is timed as an
// error and leaves the last success as it was; the runtime's reopen of the
// same Source keeps the series, which go on counting.
func TestRunSeriesAndCaughtUp(t *testing.T) {
	var failing atomic.Bool
	src, err := poll.NewSource(poll.Config{
		Schedule: "@every 5ms",
		Mode:     poll.ModeCursor,
		Cursor:   poll.CursorInt,
		Fetcher: poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error {
			if failing.Load() {
				return errors.New("system down")
			}
			return nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := src.CaughtUp(); !got.IsZero() {
		t.Fatalf("CaughtUp() before any run = %v, want zero", got)
	}
	reg := prometheus.NewRegistry()
	env := core.Env{Name: "orders", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: t.TempDir(), Metrics: reg}
	conn := map[string]string{"connector": "orders"}
	success := map[string]string{"connector": "orders", "outcome": poll.OutcomeSuccess}
	failure := map[string]string{"connector": "orders", "outcome": poll.OutcomeError}
	ctx := context.Background()

	before := time.Now()
	if err := src.Open(ctx, env, core.Position{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	waitFor(t, "three successful runs", func() bool {
		n, _ := scrape(t, reg, "tributary_poll_duration_seconds", success)
		return n >= 3
	})
	caught := src.CaughtUp()
	if caught.Before(before) || caught.After(time.Now()) {
		t.Fatalf("CaughtUp() = %v, want a time since the source opened at %v", caught, before)
	}
	last, ok := scrape(t, reg, "tributary_poll_last_success_timestamp_seconds", conn)
	if !ok || last < float64(before.Unix()) {
		t.Fatalf("tributary_poll_last_success_timestamp_seconds = %v (present %v), want a time since %v", last, ok, before.Unix())
	}
	if n, ok := scrape(t, reg, "tributary_poll_duration_seconds", failure); !ok || n != 0 {
		t.Fatalf("error runs = %v (present %v), want a series at 0", n, ok)
	}
	if st := src.Status(); st["last_success"] == nil {
		t.Errorf("Status() = %v, want last_success", st)
	}

	// The runtime closes and reopens the same value.
	if err := src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ := scrape(t, reg, "tributary_poll_duration_seconds", success)
	if err := src.Open(ctx, env, core.Position{}); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	waitFor(t, "runs after the reopen to add to the same series", func() bool {
		n, _ := scrape(t, reg, "tributary_poll_duration_seconds", success)
		return n > runs
	})

	failing.Store(true)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := src.Read(rctx); err == nil {
		t.Fatal("Read() = nil error, want the failed run's")
	}
	if n, _ := scrape(t, reg, "tributary_poll_duration_seconds", failure); n != 1 {
		t.Fatalf("error runs = %v, want 1", n)
	}
	caught = src.CaughtUp()
	last, _ = scrape(t, reg, "tributary_poll_last_success_timestamp_seconds", conn)
	if want := float64(caught.UnixNano()) / 1e9; last != want {
		t.Fatalf("last success %v, want the last successful run's %v", last, want)
	}
}

// TestConnectorCaughtUp: a connector reports its Source's freshness, and
// none before Configure.
func TestConnectorCaughtUp(t *testing.T) {
	var c poll.Connector
	var _ core.Freshness = &c
	if got := c.CaughtUp(); !got.IsZero() {
		t.Fatalf("CaughtUp() before Configure = %v, want zero", got)
	}
	src, err := poll.NewSource(poll.Config{
		Schedule: "@every 1h",
		Mode:     poll.ModeEach,
		Fetcher:  poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetSource(src, poll.ConnectorHooks{})
	if err := c.Open(context.Background(), core.Env{Name: "idle", StateDir: t.TempDir()}, core.Position{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	// The first run starts at once and finds nothing.
	waitFor(t, "the first run", func() bool { return !c.CaughtUp().IsZero() })
	if !c.CaughtUp().Equal(src.CaughtUp()) {
		t.Fatalf("Connector.CaughtUp() = %v, Source's = %v", c.CaughtUp(), src.CaughtUp())
	}
}

// TestSeriesBeforeConnecting: a connector that cannot reach its system
// shows its series, with no last success, rather than none.
func TestSeriesBeforeConnecting(t *testing.T) {
	src, err := poll.NewSource(poll.Config{
		Schedule: "@every 1h",
		Mode:     poll.ModeEach,
		Fetcher:  poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error { return nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	var c poll.Connector
	c.SetSource(src, poll.ConnectorHooks{Open: func(context.Context, core.Env) error { return errors.New("connection refused") }})
	reg := prometheus.NewRegistry()
	env := core.Env{Name: "down", StateDir: t.TempDir(), Metrics: reg}
	for range 2 {
		if err := c.Open(context.Background(), env, core.Position{}); err == nil {
			t.Fatal("Open() = nil, want the hook's error")
		}
		_ = c.Close(context.Background())
	}
	if v, ok := scrape(t, reg, "tributary_poll_last_success_timestamp_seconds", map[string]string{"connector": "down"}); !ok || v != 0 {
		t.Fatalf("last success = %v (present %v), want a series at 0", v, ok)
	}
	if n, ok := scrape(t, reg, "tributary_poll_duration_seconds", map[string]string{"connector": "down", "outcome": poll.OutcomeError}); !ok || n != 0 {
		t.Fatalf("error runs = %v (present %v), want a series at 0", n, ok)
	}
}
