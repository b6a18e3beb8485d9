// Package plugintest runs the conformance kit (core/conformance) against any
// source connector, compiled in or served by a plugin, plus the checks that
// only make sense across a process boundary: a crashed plugin is restarted
// with nothing committed lost, and a bad config is rejected with a field
// error. `tributary plugin test` runs its checks as values (Checks); a
// plugin's own tests run them as subtests:
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, plugintest.Target{
//			Name: "orders", Spec: connplugin.Spec(),
//			Config: map[string]any{"command": bin, "transport": "jsonl", "config": map[string]any{...}},
//			Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
//		})
//	}
//
// The kit needs to make changes appear in the system under test. A source
// that implements plugin.Producer (a plugin announcing the produce
// capability does, through the sidecar) gets them made that way; without
// it, the checks that need new changes are skipped with the reason.
//
// Like the kit, this package does not import package testing.
package plugintest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/plugin"
)

// Target is one connector under test.
type Target struct {
	// Name is the connector instance's name.
	Name string
	// Spec is the connector's registration.
	Spec core.SourceSpec
	// Config is the connector's `config:` block.
	Config map[string]any
	// Capabilities declares what the connector promises.
	Capabilities conformance.Capabilities
	// Timeout bounds each wait. Default 15s.
	Timeout time.Duration
}

// unknownKey is added to a config to check that it is rejected.
const unknownKey = "tributary_conformance_unknown_key"

// Checks returns the conformance kit's checks (named "Conformance/...")
// and the process checks (BadConfigRejected, CrashRestart) against tg, in
// the order they should run.
func Checks(tg Target) []conformance.Check {
	if tg.Timeout <= 0 {
		tg.Timeout = 15 * time.Second
	}
	var out []conformance.Check
	for _, c := range conformance.Checks(Harness(tg)) {
		c.Name = "Conformance/" + c.Name
		out = append(out, c)
	}
	return append(out, processChecks(tg)...)
}

func processChecks(tg Target) []conformance.Check {
	return []conformance.Check{
		{Name: "BadConfigRejected", Func: func(t conformance.TB) { BadConfigRejected(t, tg) }, Limit: 10 * tg.Timeout},
		{Name: "CrashRestart", Func: func(t conformance.TB) { CrashRestart(t, tg) }, Limit: 10 * tg.Timeout},
	}
}

// Run runs the conformance kit and the process checks against tg, as
// subtests of t (a *testing.T): Conformance/..., BadConfigRejected and
// CrashRestart.
func Run[T conformance.Tester[T]](t T, tg Target) {
	t.Helper()
	if tg.Timeout <= 0 {
		tg.Timeout = 15 * time.Second
	}
	t.Run("Conformance", func(t T) { conformance.Run(t, Harness(tg)) })
	conformance.RunChecks(t, processChecks(tg))
}

// sources tracks, per test, the sources the harness made, so that Produce
// reaches the open one and cleanup closes them all.
type sources struct {
	mu  sync.Mutex
	all map[string][]core.Source
}

func (s *sources) add(t conformance.TB, src core.Source) {
	s.mu.Lock()
	s.all[t.Name()] = append(s.all[t.Name()], src)
	s.mu.Unlock()
}

// producer returns the most recent source of t that can produce now.
func (s *sources) producer(t conformance.TB) plugin.Producer {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.all[t.Name()]
	for i := len(list) - 1; i >= 0; i-- {
		if ps, ok := list[i].(*connplugin.Source); ok {
			if ps.CanProduce() {
				return ps
			}
			continue
		}
		if p, ok := list[i].(plugin.Producer); ok {
			return p
		}
	}
	return nil
}

// Harness returns the kit's harness for tg. New configures a new source and
// closes it when the test ends; Produce asks the open source to produce,
// and skips the check when it cannot.
func Harness(tg Target) conformance.Harness {
	srcs := &sources{all: map[string][]core.Source{}}
	return conformance.Harness{
		New: func(t conformance.TB) core.Source {
			src, err := newSource(tg, tg.Config)
			if err != nil {
				t.Fatal(err)
			}
			srcs.add(t, src)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), tg.Timeout)
				defer cancel()
				_ = src.Close(ctx)
			})
			return src
		},
		Produce: func(t conformance.TB, n int) {
			p := srcs.producer(t)
			if p == nil {
				t.Skip("the connector has no produce hook (plugin.Producer, or a plugin announcing the produce capability): checks that need new changes cannot run")
			}
			ctx, cancel := context.WithTimeout(context.Background(), tg.Timeout)
			defer cancel()
			if err := p.Produce(ctx, n); err != nil {
				t.Fatalf("produce %d changes: %v", n, err)
			}
		},
		Capabilities: tg.Capabilities,
		Timeout:      tg.Timeout,
	}
}

func newSource(tg Target, values map[string]any) (core.Source, error) {
	src := tg.Spec.New()
	if err := src.Configure(core.NewConfig(tg.Name, copyValues(values))); err != nil {
		return nil, fmt.Errorf("configure %q: %w", tg.Name, err)
	}
	return src, nil
}

func copyValues(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		return maps.Clone(m)
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return maps.Clone(m)
	}
	return normalize(out).(map[string]any)
}

// normalize turns JSON's float64 integers back into ints, as YAML gives.
func normalize(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int(x)) {
			return int(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

// isPlugin reports whether tg runs out of process.
func isPlugin(tg Target) bool { return tg.Spec.Type == connplugin.Type }

// BadConfigRejected checks that a config with an unknown key is rejected
// with a *core.FieldError naming it: by Configure for a compiled-in
// connector, by the plugin (through Open, as a fatal error below
// "config") for a plugin.
func BadConfigRejected(t conformance.TB, tg Target) {
	if !isPlugin(tg) {
		bad := maps.Clone(tg.Config)
		if bad == nil {
			bad = map[string]any{}
		}
		bad[unknownKey] = true
		err := tg.Spec.New().Configure(core.NewConfig(tg.Name, bad))
		checkFieldError(t, err, unknownKey)
		return
	}
	bad := copyValues(tg.Config)
	inner, _ := bad["config"].(map[string]any)
	if inner == nil {
		inner = map[string]any{}
	}
	inner[unknownKey] = true
	bad["config"] = inner
	src, err := newSource(tg, bad)
	if err != nil {
		t.Fatalf("the sidecar's side of the config was rejected: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), tg.Timeout)
	defer cancel()
	env := conformance.DefaultEnv(t)
	err = src.Open(ctx, env, core.Position{})
	_ = src.Close(ctx)
	if !errors.Is(err, core.ErrFatal) {
		t.Errorf("Open with a bad plugin config = %v, want a fatal error (restarting cannot fix a config)", err)
	}
	checkFieldError(t, err, "config."+unknownKey)
}

func checkFieldError(t conformance.TB, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("config with unknown key %q accepted; decode strictly (core.Config.Decode) so that typos are caught", unknownKey)
	}
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if errors.As(e, &fe) && strings.Contains(fe.Path, path) {
			return
		}
	}
	t.Fatalf("config with unknown key rejected without a *core.FieldError naming %q: %v", path, err)
}

// CrashRestart runs the plugin in the runtime, kills its process once
// changes flow, and checks that the runtime starts it again from the last
// committed position: every produced change arrives, and the connector
// runs again.
func CrashRestart(t conformance.TB, tg Target) {
	if !isPlugin(tg) {
		t.Skip("compiled-in connectors share the sidecar's process; there is no plugin to crash")
	}
	h := Harness(tg)
	st := memstream.New()
	src := h.New(t).(*connplugin.Source)
	env := conformance.DefaultEnv(t)
	rt, err := runtime.New(runtime.Options{
		Stream: st,
		Connectors: []runtime.Connector{{
			Name: tg.Name, Type: tg.Spec.Type, Source: src, Mapper: positionMapper(tg.Name),
			Retry: runtime.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		}},
		StateDir: env.StateDir, ShutdownTimeout: tg.Timeout,
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
	deadline := time.Now().Add(tg.Timeout)
	waitRunning := func() {
		t.Helper()
		for src.PID() == 0 || rt.Status().Connectors[0].State != runtime.StateRunning {
			if time.Now().After(deadline) {
				t.Fatalf("connector not running: %+v", rt.Status().Connectors[0])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRunning()
	h.Produce(t, 10)
	wctx, wcancel := context.WithTimeout(context.Background(), tg.Timeout)
	defer wcancel()
	if err := st.WaitLen(wctx, 10); err != nil {
		t.Fatalf("events before the crash: %v (status %+v)", err, rt.Status().Connectors[0])
	}
	pid := src.PID()
	proc, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil {
		t.Fatalf("kill plugin process %d: %v", pid, err)
	}
	for src.PID() == pid || src.PID() == 0 || rt.Status().Connectors[0].State != runtime.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("plugin not restarted after its process was killed: %+v", rt.Status().Connectors[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.Produce(t, 10)
	for distinct(st) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 20 changes arrived after the restart (status %+v)", distinct(st), rt.Status().Connectors[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := rt.Status().Connectors[0].Retries; r < 1 {
		t.Errorf("retries = %d after a crash, want at least 1", r)
	}
}

// positionMapper emits one event per change whose id is its position.
func positionMapper(name string) runtime.Mapper {
	return runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		return []runtime.Output{{Rule: "position", Event: &core.Event{
			ID: core.EventID(name, ch.Position, "position"), Source: "/tributary/" + name,
			SpecVersion: core.SpecVersion, Type: "dev.tributary.conformance.changed",
			Subject: ch.Position.String(), DataContentType: "application/json", Data: json.RawMessage(`{}`),
		}}}
	})
}

func distinct(st *memstream.Stream) int {
	seen := map[string]bool{}
	for _, p := range st.All() {
		seen[p.Message.UUID] = true
	}
	return len(seen)
}
