package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

func open(t TB, h Harness, src core.Source, env core.Env, from core.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := src.Open(ctx, env, from); err != nil {
		t.Fatalf("Open(from %s): %v", from, err)
	}
}

func closeSource(t TB, h Harness, src core.Source) {
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
func readN(t TB, h Harness, src core.Source, n int) []core.Change {
	t.Helper()
	var out []core.Change
	if !readUntil(t, h, src, func(batch []core.Change) bool {
		out = append(out, batch...)
		return len(out) >= n
	}) {
		t.Fatalf("read %d of %d changes within %s", len(out), n, h.Timeout)
	}
	return out
}

// readUntil reads and hands each batch to enough until it reports that
// enough arrived. It returns false if the timeout passed first, and fails
// t on a read error or a malformed change.
func readUntil(t TB, h Harness, src core.Source, enough func(batch []core.Change) bool) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	n := 0
	for {
		batch, err := src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			t.Fatalf("Read after %d changes: %v", n, err)
		}
		for _, ch := range batch {
			if ch.Position.IsZero() {
				t.Fatalf("change %d has an empty position", n)
			}
			if !ch.Op.Valid() {
				t.Fatalf("change %d has invalid op %q", n, ch.Op)
			}
			n++
		}
		if enough(batch) {
			return true
		}
	}
}

// posKey is a change's identity (what its event ids derive from), as a map
// key.
func posKey(p core.Position) string { return fmt.Sprintf("%d/%x", p.Version, p.Identity()) }

func testOpenClose(t TB, h Harness) {
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	closeSource(t, h, src)
	closeSource(t, h, src) // twice is harmless
}

func testCloseWithoutOpen(t TB, h Harness) {
	src := h.New(t)
	closeSource(t, h, src)
}

func testReadCancel(t TB, h Harness) {
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

func testReadAck(t TB, h Harness) {
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

// testReopen opens the value it closed, as the runtime does after an error
// or a restart, and reads changes made after the reopening.
func testReopen(t TB, h Harness) {
	env := h.Env(t)
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	h.Produce(t, 3)
	before := map[string]bool{}
	for _, ch := range readN(t, h, src, 3) {
		before[posKey(ch.Position)] = true
	}
	closeSource(t, h, src)

	open(t, h, src, env, core.Position{})
	defer closeSource(t, h, src)
	h.Produce(t, 2)
	// Changes read but not acked before Close may come again; the two new
	// ones must come.
	fresh := map[string]bool{}
	if !readUntil(t, h, src, func(batch []core.Change) bool {
		for _, ch := range batch {
			if k := posKey(ch.Position); !before[k] {
				fresh[k] = true
			}
		}
		return len(fresh) >= 2
	}) {
		t.Fatalf("after Close and Open on the same source, %d of 2 new changes arrived within %s; the runtime reopens the value it closed", len(fresh), h.Timeout)
	}
}

func testResume(t TB, h Harness) {
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

	// The runtime reopens the same value from the last checkpoint.
	open(t, h, src, env, acked)
	defer closeSource(t, h, src)
	h.Produce(t, 5)
	// Everything after the ack (10) plus the 5 new changes must arrive.
	fresh := map[string]bool{}
	complete := readUntil(t, h, src, func(batch []core.Change) bool {
		for _, ch := range batch {
			k := posKey(ch.Position)
			switch {
			case before[k]:
				t.Fatalf("change at %s was acked before Close and read again after reopening from %s", ch.Position, acked)
			case want[k]:
				delete(want, k)
			case fresh[k]:
				t.Fatalf("change at %s read twice after reopening from %s", ch.Position, acked)
			default:
				fresh[k] = true
			}
		}
		return len(want) == 0 && len(fresh) >= 5
	})
	if len(want) > 0 {
		t.Fatalf("%d of the 10 changes read but not acked before Close were lost: reopening from %s did not read them again within %s", len(want), acked, h.Timeout)
	}
	if !complete || len(fresh) != 5 {
		t.Fatalf("read %d new changes after reopening from %s, want the 5 produced", len(fresh), acked)
	}
}

func checkDistinct(t TB, chs []core.Change) {
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

func testLeak(t TB, h Harness) {
	env := h.Env(t)
	base := goroutines()
	src := h.New(t)
	open(t, h, src, env, core.Position{})
	h.Produce(t, 3)
	readN(t, h, src, 3)
	closeSource(t, h, src)
	// A second session on the same value must leave nothing behind either.
	open(t, h, src, env, core.Position{})
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

func testRuntime(t TB, h Harness) {
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
		Admin:           env.Admin,
		Registerer:      env.Metrics,
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
