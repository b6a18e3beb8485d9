package plugin_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/connectors/plugin/plugintest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// testSink is the sink plugin the tests run (see TestMain): its target is
// a file of the delivered event ids, one a line. It fails or refuses the
// ids it is told to, through the target hooks, and can exit the process
// after a number of deliveries, once (when Marker does not exist yet).
type testSink struct {
	cfg struct {
		File       string `yaml:"file"`
		CrashAfter int    `yaml:"crash_after"`
		Marker     string `yaml:"marker"`
	}
	mu        sync.Mutex
	fail      map[string]bool
	refuse    map[string]bool
	delivered int
}

func (s *testSink) Configure(c core.Config) error {
	if err := c.Decode(&s.cfg); err != nil {
		return err
	}
	if s.cfg.File == "" {
		return core.FieldErrorf("file", "is required: the file the delivered ids go to")
	}
	return nil
}

func (s *testSink) Open(context.Context, core.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.refuse = map[string]bool{}, map[string]bool{}
	return nil
}

func (s *testSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]core.Result, len(ds))
	held := map[string]bool{}
	f, err := os.OpenFile(s.cfg.File, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		for i := range out {
			out[i] = core.Result{Status: core.StatusRetry, Err: err}
		}
		return out
	}
	defer f.Close()
	for i, d := range ds {
		key, id := d.Event.PartitionKey, d.Event.ID
		switch {
		case held[key] || ctx.Err() != nil:
			out[i] = core.Result{Status: core.StatusRetry}
		case s.refuse[id]:
			out[i] = core.Result{Status: core.StatusFailed, Err: errors.New("refused by the test target"), Response: "400 refused"}
		case s.fail[id]:
			out[i] = core.Result{Status: core.StatusRetry, Err: errors.New("failing by the test target"), RetryAfter: 2 * time.Second}
		default:
			if s.cfg.CrashAfter > 0 && s.delivered == s.cfg.CrashAfter {
				if _, err := os.Stat(s.cfg.Marker); errors.Is(err, os.ErrNotExist) {
					_ = os.WriteFile(s.cfg.Marker, nil, 0o644)
					os.Exit(3)
				}
			}
			if _, err := fmt.Fprintln(f, id); err != nil {
				out[i] = core.Result{Status: core.StatusRetry, Err: err}
				break
			}
			s.delivered++
			out[i] = core.Result{Status: core.StatusDelivered}
		}
		if out[i].Status != core.StatusDelivered {
			held[key] = true
		}
	}
	return out
}

func (s *testSink) Close(context.Context) error { return nil }

func (s *testSink) Received(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readIDs(s.cfg.File)
}

func (s *testSink) Stage(_ context.Context, mode string, ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch mode {
	case plugin.TargetFail:
		for _, id := range ids {
			s.fail[id] = true
		}
	case plugin.TargetRefuse:
		for _, id := range ids {
			s.refuse[id] = true
		}
	case plugin.TargetRecover:
		s.fail, s.refuse = map[string]bool{}, map[string]bool{}
	default:
		return fmt.Errorf("unknown target mode %q", mode)
	}
	return nil
}

func readIDs(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

var (
	_ core.Sink         = (*testSink)(nil)
	_ plugin.SinkTarget = (*testSink)(nil)
)

// TestSinkConformance runs the sink kit through the sidecar's plugin sink
// against the test sink plugin, on both transports, as `tributary plugin
// test` does.
func TestSinkConformance(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			file := t.TempDir() + "/target.ids"
			plugintest.RunSink(t, plugintest.SinkTarget{
				Name: "test_sink", Spec: connplugin.SinkSpec(),
				Config: self(t, tr, map[string]any{"file": file}),
			})
		})
	}
}

// newPluginSink configures and opens a plugin sink running the test sink.
func newPluginSink(t *testing.T, tr string, inner map[string]any) *connplugin.Sink {
	t.Helper()
	s := connplugin.NewSink()
	if err := s.Configure(core.NewConfig("test_sink", self(t, tr, inner))); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), core.Env{Name: "test_sink", StateDir: t.TempDir()}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func deliveries(keys ...string) []core.Delivery {
	out := make([]core.Delivery, len(keys))
	for i, k := range keys {
		out[i] = core.Delivery{Event: &core.Event{
			ID: fmt.Sprintf("ev-%d-%d", time.Now().UnixNano(), i), Source: "/test", SpecVersion: core.SpecVersion,
			Type: "com.example.order.accepted", PartitionKey: k, DataContentType: "application/json",
			Data: []byte(`{"total": 129.90}`), Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		}, Data: map[string]any{"k": k}}
	}
	return out
}

// TestSinkResultsOnTheWire: a plugin's results keep their status, error,
// Retry-After and response across the process boundary.
func TestSinkResultsOnTheWire(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s := newPluginSink(t, tr, map[string]any{"file": t.TempDir() + "/ids"})
			ds := deliveries("a", "b", "c")
			ctx := context.Background()
			if err := s.Stage(ctx, plugin.TargetFail, []string{ds[1].Event.ID}); err != nil {
				t.Fatal(err)
			}
			if err := s.Stage(ctx, plugin.TargetRefuse, []string{ds[2].Event.ID}); err != nil {
				t.Fatal(err)
			}
			rs := s.Write(ctx, ds)
			if rs[0].Status != core.StatusDelivered || rs[1].Status != core.StatusRetry || rs[2].Status != core.StatusFailed {
				t.Fatalf("statuses %v %v %v, want delivered retry failed", rs[0].Status, rs[1].Status, rs[2].Status)
			}
			if rs[1].RetryAfter != 2*time.Second || rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "failing by the test target") {
				t.Errorf("retry result %+v, want its error and a 2s Retry-After", rs[1])
			}
			if rs[2].Response != "400 refused" || rs[2].Err == nil {
				t.Errorf("failed result %+v, want its error and response", rs[2])
			}
			got, err := s.Received(ctx)
			if err != nil || !slices.Equal(got, []string{ds[0].Event.ID}) {
				t.Errorf("received %v (%v), want only %s", got, err, ds[0].Event.ID)
			}
		})
	}
}

// TestSinkRestartsAfterCrash: when the plugin process dies in a write,
// that write is retried, and the next write starts a new process that
// delivers.
func TestSinkRestartsAfterCrash(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			dir := t.TempDir()
			s := newPluginSink(t, tr, map[string]any{"file": dir + "/ids", "crash_after": 1, "marker": dir + "/crashed"})
			ds := deliveries("a", "a")
			rs := s.Write(context.Background(), ds)
			if rs[0].Status != core.StatusRetry || rs[0].Err == nil || rs[1].Status != core.StatusRetry {
				t.Fatalf("results %+v, want retries (the plugin crashed) with the reason on the first", rs)
			}
			starts := s.Starts()
			rs = s.Write(context.Background(), ds)
			for i, r := range rs {
				if r.Status != core.StatusDelivered {
					t.Fatalf("delivery %d after the crash: %s (%v)", i, r.Status, r.Err)
				}
			}
			if s.Starts() != starts+1 {
				t.Errorf("%d starts after the crash, want %d", s.Starts(), starts+1)
			}
		})
	}
}

// TestSinkRefusesSourcePlugin: a source plugin named as a sink is a fatal
// error that says so.
func TestSinkRefusesSourcePlugin(t *testing.T) {
	for _, tr := range []string{"jsonl"} {
		cfg := self(t, tr, map[string]any{"file": "x"})
		cfg["env"] = map[string]any{"TRIBUTARY_TEST_FORCE_SOURCE": "1"}
		s := connplugin.NewSink()
		if err := s.Configure(core.NewConfig("test_sink", cfg)); err != nil {
			t.Fatal(err)
		}
		err := s.Open(context.Background(), core.Env{StateDir: t.TempDir()})
		s.Close(context.Background())
		if err == nil || !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "sink") {
			t.Errorf("Open: %v; want a fatal error saying the plugin is no sink", err)
		}
	}
}
