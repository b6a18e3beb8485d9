// Package conformance is the kit every source connector runs: open and close
// within a deadline, reads that stop on cancel, acknowledgement, resume
// after a partial ack with nothing lost, no goroutine leaks, and a run
// through the real runtime. Shipped connectors and custom ones run the same
// checks:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			New:     func(t testing.TB) core.Source { ... },
//			Produce: func(t testing.TB, n int) { ... },
//			Capabilities: conformance.Capabilities{Resume: true},
//		})
//	}
//
// A capability a connector lacks is declared false with a reason; the kit
// then skips the checks that depend on it and says why.
package conformance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// Harness connects the kit to one connector and the system behind it.
type Harness struct {
	// New returns a new source, already configured, reading the system
	// under test. Every call reads the same system.
	New func(t testing.TB) core.Source
	// Produce makes n new changes appear in the system. It is called while
	// a source is open.
	Produce func(t testing.TB, n int)
	// Env returns the environment to open sources with. The kit calls it
	// once per check and reuses it across reopens, so state directories
	// persist as they would across restarts. The default gives a temporary
	// state directory and, in HTTP, a router served on a local test server
	// whose URL is available through ServerURL.
	Env func(t testing.TB) core.Env
	// Capabilities declares what the connector promises.
	Capabilities Capabilities
	// Timeout bounds each wait (Open, Close, reading the produced changes).
	// Default 15s.
	Timeout time.Duration
}

// Capabilities declares what a connector promises. A false capability needs
// a reason, shown when its checks are skipped.
type Capabilities struct {
	// Resume: reopening from an acked position reads nothing at or before
	// it and everything after it.
	Resume       bool
	ResumeReason string
	// Ordered: changes are read in the order Produce made them.
	Ordered       bool
	OrderedReason string
}

// Run runs every check against the harness.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Produce == nil {
		t.Fatal("conformance: Harness.New and Harness.Produce are required")
	}
	if h.Timeout <= 0 {
		h.Timeout = 15 * time.Second
	}
	if h.Env == nil {
		h.Env = DefaultEnv
	}
	t.Run("OpenClose", func(t *testing.T) { testOpenClose(t, h) })
	t.Run("CloseWithoutOpen", func(t *testing.T) { testCloseWithoutOpen(t, h) })
	t.Run("ReadStopsOnCancel", func(t *testing.T) { testReadCancel(t, h) })
	t.Run("ReadAck", func(t *testing.T) { testReadAck(t, h) })
	t.Run("ResumeAfterPartialAck", func(t *testing.T) { testResume(t, h) })
	t.Run("NoGoroutineLeak", func(t *testing.T) { testLeak(t, h) })
	t.Run("ThroughRuntime", func(t *testing.T) { testRuntime(t, h) })
}

// DefaultEnv returns an Env with a temporary state directory, a discarding
// logger and an HTTP router served by an httptest server (closed at the end
// of the test). ServerURL returns that server's URL.
func DefaultEnv(t testing.TB) core.Env {
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	servers.set(t, srv.URL)
	return core.Env{
		Name:     "conformance",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		StateDir: t.TempDir(),
		HTTP:     router,
	}
}

// ServerURL returns the base URL of the HTTP router DefaultEnv made for t,
// for harnesses that push changes over HTTP.
func ServerURL(t testing.TB) string { return servers.get(t) }

func open(t testing.TB, h Harness, src core.Source, env core.Env, from core.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := src.Open(ctx, env, from); err != nil {
		t.Fatalf("Open(from %s): %v", from, err)
	}
}

func closeSource(t testing.TB, h Harness, src core.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	start := time.Now()
	if err := src.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > h.Timeout {
		t.Fatalf("Close took %s, longer than its deadline %s", d, h.Timeout)
	}
}

// readN reads until n changes arrived, or fails after the timeout.
func readN(t testing.TB, h Harness, src core.Source, n int) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	var out []core.Change
	for len(out) < n {
		batch, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d changes: %v", len(out), n, err)
		}
		for _, ch := range batch {
			if ch.Position.IsZero() {
				t.Fatalf("change %d has an empty position", len(out))
			}
			if !ch.Op.Valid() {
				t.Fatalf("change %d has invalid op %q", len(out), ch.Op)
			}
		}
		out = append(out, batch...)
	}
	return out
}

// posKey is a change's identity (what its event ids derive from), as a map
// key.
func posKey(p core.Position) string { return fmt.Sprintf("%d/%x", p.Version, p.Identity()) }

func testOpenClose(t *testing.T, h Harness) {
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	closeSource(t, h, src)
	closeSource(t, h, src) // twice is harmless
}

func testCloseWithoutOpen(t *testing.T, h Harness) {
	src := h.New(t)
	closeSource(t, h, src)
}

func testReadCancel(t *testing.T, h Harness) {
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	defer closeSource(t, h, src)
	// Drain whatever an initial snapshot may hold, then expect a block.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	for {
		_, err := src.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.Fatalf("Read failed before its context ended: %v", err)
			}
			break
		}
		if time.Since(start) > h.Timeout {
			t.Fatal("Read kept returning changes; it never blocked")
		}
	}
	if d := time.Since(start); d > h.Timeout {
		t.Fatalf("Read returned %s after its context ended", d)
	}
}

func testReadAck(t *testing.T, h Harness) {
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	defer closeSource(t, h, src)
	h.Produce(t, 10)
	got := readN(t, h, src, 10)
	seen := map[string]bool{}
	for i, ch := range got {
		k := posKey(ch.Position)
		if seen[k] {
			t.Fatalf("change %d repeats position %s within one session", i, ch.Position)
		}
		seen[k] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := src.Ack(ctx, got[4].Position); err != nil {
		t.Fatalf("Ack(%s): %v", got[4].Position, err)
	}
	if err := src.Ack(ctx, got[len(got)-1].Position); err != nil {
		t.Fatalf("Ack(%s): %v", got[len(got)-1].Position, err)
	}
}

func testResume(t *testing.T, h Harness) {
	if !h.Capabilities.Resume {
		t.Skipf("connector does not resume from a position: %s", h.Capabilities.ResumeReason)
	}
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	h.Produce(t, 20)
	first := readN(t, h, src, 20)
	if h.Capabilities.Ordered {
		checkDistinct(t, first)
	}
	acked := first[9].Position
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := src.Ack(ctx, acked); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	closeSource(t, h, src)

	want := map[string]bool{}
	for _, ch := range first[10:] {
		want[posKey(ch.Position)] = true
	}
	before := map[string]bool{}
	for _, ch := range first[:10] {
		before[posKey(ch.Position)] = true
	}

	src2 := h.New(t)
	open(t, h, src2, env, acked)
	defer closeSource(t, h, src2)
	h.Produce(t, 5)
	// Everything after the ack (10) plus the 5 new changes must arrive.
	second := readN(t, h, src2, 15)
	newCount := 0
	for _, ch := range second {
		k := posKey(ch.Position)
		if before[k] {
			t.Fatalf("change at %s was acked before the restart and read again", ch.Position)
		}
		if want[k] {
			delete(want, k)
		} else {
			newCount++
		}
	}
	if len(want) > 0 {
		t.Fatalf("%d changes read but not acked before the restart were lost", len(want))
	}
	if newCount != 5 {
		t.Fatalf("read %d new changes after the restart, want 5", newCount)
	}
}

func checkDistinct(t *testing.T, chs []core.Change) {
	t.Helper()
	seen := map[string]bool{}
	for _, ch := range chs {
		k := posKey(ch.Position)
		if seen[k] {
			t.Fatalf("position %s read twice", ch.Position)
		}
		seen[k] = true
	}
}

func testLeak(t *testing.T, h Harness) {
	env := h.Env(t)
	base := goroutines()
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	h.Produce(t, 3)
	readN(t, h, src, 3)
	closeSource(t, h, src)
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

func testRuntime(t *testing.T, h Harness) {
	env := h.Env(t)
	st := memstream.New()
	src := h.New(t)
	rt, err := runtime.New(runtime.Options{
		Stream: st,
		Connectors: []runtime.Connector{{
			Name: "conformance", Type: "conformance", Source: src, Mapper: identityMapper("conformance"),
			Retry: runtime.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		}},
		StateDir:        env.StateDir,
		HTTP:            env.HTTP,
		ShutdownTimeout: h.Timeout,
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
	deadline := time.Now().Add(h.Timeout)
	for rt.Status().Connectors[0].State != runtime.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("connector not running: %+v", rt.Status().Connectors[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Produce(t, 10)
	wctx, wcancel := context.WithTimeout(context.Background(), h.Timeout)
	defer wcancel()
	if err := st.WaitLen(wctx, 10); err != nil {
		t.Fatalf("events through the runtime: %v (status %+v)", err, rt.Status().Connectors[0])
	}
	for time.Now().Before(deadline) {
		if _, ok, _ := st.Checkpoints().Load(ctx, "conformance"); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no checkpoint committed after the events were durable")
}
