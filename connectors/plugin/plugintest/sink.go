package plugintest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/plugin"
)

// SinkTarget is one plugin sink under test: a sink of type plugin whose
// plugin announces the target capability (plugin.SinkTarget), through
// which the sink kit reads what the target took and stages its failures.
type SinkTarget struct {
	// Name is the sink instance's name.
	Name string
	// Spec is the sink's registration (connplugin.SinkSpec()).
	Spec core.SinkSpec
	// Config is the sink's `config:` block.
	Config map[string]any
	// Timeout bounds each wait. Default 15s.
	Timeout time.Duration
}

// SinkChecks returns the sink kit's checks (named "SinkConformance/...")
// against tg, and a function that stops the plugin process the checks
// read the target through; call it after the checks ran. A plugin
// without the target capability skips every check, saying so.
func SinkChecks(tg SinkTarget) ([]conformance.Check, func()) {
	if tg.Timeout <= 0 {
		tg.Timeout = 15 * time.Second
	}
	st := &staging{tg: tg}
	var out []conformance.Check
	for _, c := range conformance.SinkChecks(st.harness()) {
		f := c.Func
		c.Name = "SinkConformance/" + c.Name
		c.Func = func(t conformance.TB) {
			if err := st.probe(); err != nil {
				t.Skipf("%v", err)
			}
			f(t)
		}
		out = append(out, c)
	}
	return out, st.close
}

// RunSink runs the sink kit against tg as subtests of t (a *testing.T).
func RunSink[T conformance.Tester[T]](t T, tg SinkTarget) {
	t.Helper()
	checks, stop := SinkChecks(tg)
	defer stop()
	conformance.RunChecks(t, checks)
}

// staging is the target's staged failures, applied to every sink the
// checks open (a plugin process holds them in memory, and each Open
// starts a new one), and the probe sink through which Received reads the
// target.
type staging struct {
	tg SinkTarget

	mu      sync.Mutex
	open    []*stagedSink
	fail    []string
	refuse  []string
	probeS  *connplugin.Sink
	probeOK error
	tried   bool
	dir     string // the probe's state directory
}

func (st *staging) harness() conformance.SinkHarness {
	return conformance.SinkHarness{
		New: func(t conformance.TB) core.Sink {
			s, err := st.newSink()
			if err != nil {
				t.Fatalf("configure sink %s: %v", st.tg.Name, err)
			}
			ss := &stagedSink{Sink: s, st: st}
			t.Cleanup(func() { _ = ss.Close(context.Background()) })
			return ss
		},
		Received: st.received,
		Fail:     func(t conformance.TB, ids []string) { st.stage(t, plugin.TargetFail, ids) },
		Refuse:   func(t conformance.TB, ids []string) { st.stage(t, plugin.TargetRefuse, ids) },
		Recover:  func(t conformance.TB) { st.stage(t, plugin.TargetRecover, nil) },
		Capabilities: conformance.SinkCapabilities{
			Targeted:    true,
			StallReason: "the plugin protocol has no hook that stalls a target; a write cancelled before it starts is checked by WriteStopsOnCancel",
		},
		Timeout: st.tg.Timeout,
	}
}

func (st *staging) newSink() (*connplugin.Sink, error) {
	s, ok := st.tg.Spec.New().(*connplugin.Sink)
	if !ok {
		return nil, fmt.Errorf("sink type %q is not a plugin sink: the sink checks read the target through a plugin's target hooks", st.tg.Spec.Type)
	}
	if err := s.Configure(core.NewConfig(st.tg.Name, copyValues(st.tg.Config))); err != nil {
		return nil, err
	}
	return s, nil
}

// probe opens, once, the sink through which Received reads the target,
// and says why the checks cannot run when it cannot.
func (st *staging) probe() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tried {
		return st.probeOK
	}
	st.tried = true
	s, err := st.newSink()
	if err == nil {
		dir, derr := os.MkdirTemp("", "tributary-sink-probe-")
		if derr != nil {
			return derr
		}
		st.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), st.tg.Timeout)
		err = s.Open(ctx, core.Env{Name: st.tg.Name, StateDir: dir})
		cancel()
	}
	switch {
	case err != nil:
		st.probeOK = fmt.Errorf("sink %s does not open: %w", st.tg.Name, err)
	case !s.CanTarget():
		_ = s.Close(context.Background())
		st.probeOK = fmt.Errorf("sink %s: the plugin does not announce the %q capability, so the checks cannot see what its target took (implement plugin.SinkTarget, or answer target messages)", st.tg.Name, plugin.CapabilityTarget)
	default:
		st.probeS = s
	}
	return st.probeOK
}

func (st *staging) received() []conformance.Delivered {
	st.mu.Lock()
	s := st.probeS
	st.mu.Unlock()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.tg.Timeout)
	defer cancel()
	ids, err := s.Received(ctx)
	if err != nil {
		return nil
	}
	out := make([]conformance.Delivered, len(ids))
	for i, id := range ids {
		out[i] = conformance.Delivered{ID: id}
	}
	return out
}

// stage records a staged failure (or its end) and applies it to every
// open sink.
func (st *staging) stage(t conformance.TB, mode string, ids []string) {
	st.mu.Lock()
	switch mode {
	case plugin.TargetFail:
		st.fail = append(st.fail, ids...)
	case plugin.TargetRefuse:
		st.refuse = append(st.refuse, ids...)
	default:
		st.fail, st.refuse = nil, nil
	}
	open := slices.Clone(st.open)
	st.mu.Unlock()
	for _, s := range open {
		ctx, cancel := context.WithTimeout(context.Background(), st.tg.Timeout)
		err := s.Sink.Stage(ctx, mode, ids)
		cancel()
		if err != nil {
			t.Fatalf("stage %s: %v", mode, err)
		}
	}
}

func (st *staging) close() {
	st.mu.Lock()
	s, dir := st.probeS, st.dir
	st.probeS, st.dir = nil, ""
	st.mu.Unlock()
	if s != nil {
		_ = s.Close(context.Background())
	}
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// stagedSink is a plugin sink that, once open, stages the failures staged
// so far on its plugin.
type stagedSink struct {
	*connplugin.Sink
	st *staging
}

func (s *stagedSink) Open(ctx context.Context, env core.Env) error {
	if err := s.Sink.Open(ctx, env); err != nil {
		return err
	}
	st := s.st
	st.mu.Lock()
	st.open = append(st.open, s)
	fail, refuse := slices.Clone(st.fail), slices.Clone(st.refuse)
	st.mu.Unlock()
	for _, staged := range []struct {
		mode string
		ids  []string
	}{{plugin.TargetFail, fail}, {plugin.TargetRefuse, refuse}} {
		if len(staged.ids) == 0 {
			continue
		}
		if err := s.Sink.Stage(ctx, staged.mode, staged.ids); err != nil {
			return err
		}
	}
	return nil
}

func (s *stagedSink) Close(ctx context.Context) error {
	st := s.st
	st.mu.Lock()
	st.open = slices.DeleteFunc(st.open, func(o *stagedSink) bool { return o == s })
	st.mu.Unlock()
	return s.Sink.Close(ctx)
}

var _ core.Sink = (*stagedSink)(nil)
