package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/connectors/plugin/plugintest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

var transports = []string{"grpc", "jsonl"}

// self returns the connector config that runs this test binary as the
// plugin (see TestMain) with the plugin's own config.
func self(t conformance.TB, transport string, inner map[string]any) map[string]any {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"command": exe, "transport": transport, "config": inner,
		"start_timeout": "20s", "heartbeat_timeout": "2s", "credits": 64,
	}
}

// journals gives each check its own journal file.
type journals struct {
	dir string
	mu  sync.Mutex
	m   map[string]string
}

func (j *journals) get(t conformance.TB) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if p, ok := j.m[t.Name()]; ok {
		return p
	}
	p := filepath.Join(j.dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+".jsonl")
	j.m[t.Name()] = p
	return p
}

// TestConformance runs the kit through the sidecar end against a plugin,
// on both transports, producing by appending to the plugin's journal.
func TestConformance(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			js := &journals{dir: t.TempDir(), m: map[string]string{}}
			conformance.Run(t, conformance.Harness{
				New: func(t conformance.TB) core.Source {
					src := connplugin.New()
					if err := src.Configure(core.NewConfig("conformance", self(t, tr, map[string]any{"journal": js.get(t), "batch": 7}))); err != nil {
						t.Fatal(err)
					}
					return src
				},
				Produce: func(t conformance.TB, n int) {
					if err := appendJournal(js.get(t), n); err != nil {
						t.Fatal(err)
					}
				},
				Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
			})
		})
	}
}

// TestPluginTestKit runs the kit the CLI runs, producing through the
// plugin's produce hook, with the crash and bad-config checks.
func TestPluginTestKit(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			plugintest.Run(t, plugintest.Target{
				Name: "kit", Spec: connplugin.Spec(),
				// A relative journal lives in each check's state directory,
				// so that every check starts from an empty system.
				Config:       self(t, tr, map[string]any{"journal": "journal.jsonl"}),
				Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
			})
		})
	}
}

func TestConfigure(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"command": "/bin/true", "transport": "jsonl", "credits": 10, "config": map[string]any{"a": 1}}
	}
	tests := []struct {
		name  string
		edit  func(map[string]any)
		field string
	}{
		{name: "missing command", edit: func(m map[string]any) { delete(m, "command") }, field: "command"},
		{name: "unknown transport", edit: func(m map[string]any) { m["transport"] = "http" }, field: "transport"},
		{name: "zero credits", edit: func(m map[string]any) { m["credits"] = -1 }, field: "credits"},
		{name: "tiny heartbeat", edit: func(m map[string]any) { m["heartbeat_timeout"] = "1ms" }, field: "heartbeat_timeout"},
		{name: "zero start timeout", edit: func(m map[string]any) { m["start_timeout"] = "0s" }, field: "start_timeout"},
		{name: "reserved env", edit: func(m map[string]any) { m["env"] = map[string]any{"TRIBUTARY_PLUGIN": "x"} }, field: "env.TRIBUTARY_PLUGIN"},
		{name: "config not a mapping", edit: func(m map[string]any) { m["config"] = []any{1} }, field: "config"},
		{name: "unknown key", edit: func(m map[string]any) { m["comand"] = "x" }, field: "comand"},
	}
	if err := connplugin.New().Configure(core.NewConfig("p", valid())); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.edit(m)
			err := connplugin.New().Configure(core.NewConfig("p", m))
			var fe *core.FieldError
			if !errors.As(err, &fe) || fe.Path != tt.field {
				t.Fatalf("Configure = %v, want a field error on %q", err, tt.field)
			}
		})
	}
}

func TestPluginConfigErrorsAreFieldErrors(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			src := connplugin.New()
			if err := src.Configure(core.NewConfig("p", self(t, tr, map[string]any{"batch": 3}))); err != nil {
				t.Fatal(err)
			}
			err := src.Open(context.Background(), core.Env{}, core.Position{})
			_ = src.Close(context.Background())
			if !errors.Is(err, core.ErrFatal) {
				t.Errorf("Open = %v, want fatal", err)
			}
			if paths := fieldPaths(err); strings.Join(paths, ",") != "config.journal,config.generate" {
				t.Fatalf("field errors at %v, want config.journal and config.generate (err %v)", paths, err)
			}
			// Opened by the sidecar, the paths start at the file's root.
			err = src.Open(context.Background(), core.Env{ConfigPath: "connectors[3].config"}, core.Position{})
			_ = src.Close(context.Background())
			if paths := fieldPaths(err); strings.Join(paths, ",") != "connectors[3].config.config.journal,connectors[3].config.config.generate" {
				t.Fatalf("field errors at %v, want them below connectors[3].config.config (err %v)", paths, err)
			}
		})
	}
}

func TestMissingExecutableIsFatal(t *testing.T) {
	src := connplugin.New()
	if err := src.Configure(core.NewConfig("p", map[string]any{"command": filepath.Join(t.TempDir(), "nope"), "transport": "jsonl"})); err != nil {
		t.Fatal(err)
	}
	err := src.Open(context.Background(), core.Env{}, core.Position{})
	_ = src.Close(context.Background())
	var fe *core.FieldError
	if !errors.Is(err, core.ErrFatal) || !errors.As(err, &fe) || fe.Path != "command" {
		t.Fatalf("Open = %v, want a fatal field error on command", err)
	}
}

// syncBuffer is a log destination safe for the plugin's forwarders.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStderrForwardedWithPluginName(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("connector", "orders")
			src := connplugin.New()
			cfg := self(t, tr, map[string]any{"journal": filepath.Join(t.TempDir(), "j"), "log": "hello from the plugin"})
			if err := src.Configure(core.NewConfig("orders", cfg)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := src.Open(ctx, core.Env{Name: "orders", Logger: log, StateDir: t.TempDir()}, core.Position{}); err != nil {
				t.Fatal(err)
			}
			if err := src.Close(ctx); err != nil {
				t.Fatal(err)
			}
			out := logs.String()
			exe := filepath.Base(cfg["command"].(string))
			for _, want := range []string{
				`level=WARN msg="hello from the plugin" connector=orders plugin=` + exe + ` state_dir_set=true`,
				`level=INFO msg="plain line: hello from the plugin" connector=orders plugin=` + exe,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("logs lack %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestFlowControl checks that a plugin never has more changes in the
// sidecar than its credits, however far ahead of the reader it could run.
func TestFlowControl(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			cfg := self(t, tr, map[string]any{"generate": 5000, "batch": 1000})
			cfg["credits"] = 100
			src := connplugin.New()
			if err := src.Configure(core.NewConfig("flow", cfg)); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := src.Open(ctx, core.Env{}, core.Position{}); err != nil {
				t.Fatal(err)
			}
			defer src.Close(ctx)
			got := 0
			for got < 5000 {
				// Let the plugin run ahead, then look at the buffer.
				for range 3 {
					if b := src.Status()["buffered"].(int64); b > 100 {
						t.Fatalf("%d changes buffered with 100 credits", b)
					}
					time.Sleep(time.Millisecond)
				}
				batch, err := src.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(batch) > 100 {
					t.Fatalf("batch of %d with 100 credits", len(batch))
				}
				got += len(batch)
			}
			if got != 5000 {
				t.Fatalf("read %d changes, want 5000", got)
			}
		})
	}
}

// TestCrashAndHangRestart runs a crashing plugin, a hanging plugin and a
// compiled-in connector in one runtime: both plugins are restarted from
// their last committed positions with nothing lost, and the compiled-in
// connector keeps running throughout.
func TestCrashAndHangRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			dir := t.TempDir()
			crashJ, hangJ := filepath.Join(dir, "crash.jsonl"), filepath.Join(dir, "hang.jsonl")
			for _, j := range []string{crashJ, hangJ} {
				if err := appendJournal(j, 200); err != nil {
					t.Fatal(err)
				}
			}
			newPlugin := func(name string, inner map[string]any) core.Source {
				src := connplugin.New()
				cfg := self(t, tr, inner)
				cfg["credits"] = 16
				cfg["heartbeat_timeout"] = "500ms"
				if err := src.Configure(core.NewConfig(name, cfg)); err != nil {
					t.Fatal(err)
				}
				return src
			}
			var ticks int
			var ticksMu sync.Mutex
			steady := core.SourceFunc(func(ctx context.Context) ([]core.Change, error) {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(2 * time.Millisecond):
				}
				ticksMu.Lock()
				defer ticksMu.Unlock()
				ticks++
				return []core.Change{{Op: core.OpMessage, Position: core.Position{Version: 1, Data: []byte(strings.Repeat("x", ticks%7+1) + string(rune('a'+ticks%26)) + time.Now().Format(time.RFC3339Nano))}}}, nil
			})
			st := memstream.New()
			retry := runtime.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
			rt, err := runtime.New(runtime.Options{
				Stream: st,
				Connectors: []runtime.Connector{
					{Name: "crashy", Type: connplugin.Type, Source: newPlugin("crashy", map[string]any{"journal": crashJ, "batch": 5, "crash_after": 60, "marker": filepath.Join(dir, "crashed")}), Mapper: mapper("crashy"), Retry: retry},
					{Name: "hangy", Type: connplugin.Type, Source: newPlugin("hangy", map[string]any{"journal": hangJ, "batch": 5, "hang_after": 60, "marker": filepath.Join(dir, "hung")}), Mapper: mapper("hangy"), Retry: retry},
					{Name: "steady", Type: "func", Source: steady, Mapper: mapper("steady"), Retry: retry},
				},
				StateDir: dir, ShutdownTimeout: 20 * time.Second,
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
			deadline := time.Now().Add(60 * time.Second)
			var steadyAtRestart int
			for {
				c, h := subjects(st, "crashy"), subjects(st, "hangy")
				if len(c) == 200 && len(h) == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("crashy %d/200, hangy %d/200 distinct changes; status %+v", len(c), len(h), rt.Status().Connectors)
				}
				if steadyAtRestart == 0 && rt.Status().Connectors[0].Retries > 0 && rt.Status().Connectors[1].Retries > 0 {
					steadyAtRestart = len(subjects(st, "steady"))
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, name := range []string{"crashy", "hangy"} {
				if _, err := os.Stat(filepath.Join(dir, map[string]string{"crashy": "crashed", "hangy": "hung"}[name])); err != nil {
					t.Errorf("%s never failed: %v", name, err)
				}
			}
			for i, c := range rt.Status().Connectors[:2] {
				if c.Retries < 1 {
					t.Errorf("connector %d retries = %d, want a restart", i, c.Retries)
				}
			}
			// The connector recovered, so its current error is clear; the
			// timeout stays as its last error.
			if !strings.Contains(rt.Status().Connectors[1].LastError, "heartbeat timeout") {
				t.Errorf("hangy last_error = %q, want the heartbeat timeout", rt.Status().Connectors[1].LastError)
			}
			// The compiled-in connector kept going while the plugins were
			// restarted.
			for len(subjects(st, "steady")) <= steadyAtRestart {
				if time.Now().After(deadline) {
					t.Fatalf("steady connector stalled at %d events", steadyAtRestart)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if s := rt.Status().Connectors[2]; s.Retries != 0 || s.State != runtime.StateRunning {
				t.Errorf("steady connector = %+v, want running with no retries", s)
			}
		})
	}
}

func mapper(name string) runtime.Mapper {
	return runtime.MapperFunc(func(ch *core.Change) []runtime.Output {
		return []runtime.Output{{Rule: "r", Event: &core.Event{
			ID: core.EventID(name, ch.Position, "r"), Source: "/tributary/" + name, SpecVersion: core.SpecVersion,
			Type: "dev.tributary.test." + name, Subject: ch.Position.String(), DataContentType: "application/json", Data: []byte(`{}`),
		}}}
	})
}

// subjects returns the distinct positions a connector's events carry.
func subjects(st *memstream.Stream, name string) map[string]bool {
	out := map[string]bool{}
	for _, m := range st.Messages("dev.tributary.test." + name) {
		out[m.Metadata.Get(core.HeaderSubject)] = true
	}
	return out
}

// fieldPaths returns the paths of every *core.FieldError in err's tree.
func fieldPaths(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if fe, ok := e.(*core.FieldError); ok {
			out = append(out, fe.Path)
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
