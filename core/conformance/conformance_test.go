package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// logSystem is a tiny system with an append-only log, standing in for a
// database with a change log.
type logSystem struct {
	mu      sync.Mutex
	entries []string
	notify  chan struct{}
}

func newLogSystem() *logSystem { return &logSystem{notify: make(chan struct{})} }

func (l *logSystem) append(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		l.entries = append(l.entries, "entry-"+strconv.Itoa(len(l.entries)+1))
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// flaw is a defect a logSource can be built with, for the kit to find.
type flaw int

const (
	sound             flaw = iota
	skipsAfterAck          // resumes five entries after the one acked
	ignoresFrom            // always starts from the first entry
	opensOnce              // refuses Open after Close
	ignoresCancel          // Read blocks past its context's end
	leaksGoroutine         // Open starts a goroutine Close does not stop
	failsAck               // Ack always fails
	closedForeverRead      // Close sets a flag Open does not reset
	keepsCollectors        // Open registers a collector Close leaves registered
	keepsRoute             // Open mounts a route Close leaves mounted
)

// logSource reads logSystem from a position: the index of the next entry.
// One value serves many sessions, as the runtime drives it.
type logSource struct {
	sys  *logSystem
	flaw flaw
	// release unblocks what a flaw left hanging when the test ends.
	release chan struct{}

	mu     sync.Mutex
	next   int
	done   chan struct{}
	opened bool
	closed bool
}

func (s *logSource) Configure(core.Config) error { return nil }

func (s *logSource) Open(_ context.Context, env core.Env, from core.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flaw == opensOnce && s.closed {
		return errors.New("source closed")
	}
	s.done, s.opened = make(chan struct{}), true
	s.next = 0
	if !from.IsZero() && s.flaw != ignoresFrom {
		n, err := strconv.Atoi(string(from.Data))
		if err != nil {
			return core.Fatal(err)
		}
		s.next = n
		if s.flaw == skipsAfterAck {
			s.next += 5
		}
	}
	if s.flaw == keepsCollectors {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "log_entries", ConstLabels: prometheus.Labels{"connector": env.Name}})
		if err := env.Metrics.Register(g); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	if s.flaw == keepsRoute {
		if _, err := env.HTTP.Handle("POST /log", http.NotFoundHandler()); err != nil {
			return fmt.Errorf("mount route: %w", err)
		}
	}
	if s.flaw == leaksGoroutine {
		go func() { <-s.release }()
	}
	return nil
}

func (s *logSource) Read(ctx context.Context) ([]core.Change, error) {
	s.mu.Lock()
	done, stale := s.done, s.closed && s.flaw == closedForeverRead
	s.mu.Unlock()
	if stale {
		return nil, errors.New("source closed")
	}
	if s.flaw == ignoresCancel {
		ctx = context.Background()
	}
	for {
		s.sys.mu.Lock()
		entries, notify := s.sys.entries, s.sys.notify
		s.sys.mu.Unlock()
		s.mu.Lock()
		var out []core.Change
		for ; s.next < len(entries); s.next++ {
			out = append(out, core.Change{
				Op:       core.OpCreate,
				After:    map[string]any{"value": entries[s.next]},
				Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(s.next + 1))},
			})
		}
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-done:
			return nil, errors.New("source closed")
		case <-s.release:
			return nil, errors.New("released")
		}
	}
}

func (s *logSource) Ack(context.Context, core.Position) error {
	if s.flaw == failsAck {
		return errors.New("ack refused")
	}
	return nil
}

func (s *logSource) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		close(s.done)
		s.opened = false
	}
	s.closed = true
	return nil
}

func harness(t *testing.T, f flaw, timeout time.Duration) conformance.Harness {
	sys := newLogSystem()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return conformance.Harness{
		New:          func(conformance.TB) core.Source { return &logSource{sys: sys, flaw: f, release: release} },
		Produce:      func(_ conformance.TB, n int) { sys.append(n) },
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
		Timeout:      timeout,
	}
}

func TestKitOnReferenceSource(t *testing.T) {
	conformance.Run(t, harness(t, sound, 0))
}

// TestKitFindsFlaws runs the check meant to find each defect against a
// source with that defect and checks that it fails, saying why, while the
// sound source passes every check.
func TestKitFindsFlaws(t *testing.T) {
	tests := []struct {
		name       string
		flaw       flaw
		check      string
		wantReason string
	}{
		{name: "sound source", flaw: sound},
		{name: "loses changes after a partial ack", flaw: skipsAfterAck, check: "ResumeAfterPartialAck",
			wantReason: "5 of the 10 changes read but not acked before Close were lost"},
		{name: "reads acked changes again", flaw: ignoresFrom, check: "ResumeAfterPartialAck", wantReason: "was acked before Close and read again"},
		{name: "cannot open after close", flaw: opensOnce, check: "ReopenAfterClose", wantReason: "source closed"},
		{name: "reads closed after a reopen", flaw: closedForeverRead, check: "ReopenAfterClose", wantReason: "source closed"},
		{name: "read ignores cancel", flaw: ignoresCancel, check: "ReadStopsOnCancel", wantReason: "did not finish within"},
		{name: "leaks a goroutine", flaw: leaksGoroutine, check: "NoGoroutineLeak", wantReason: "goroutines still running after Close"},
		{name: "keeps its collectors registered", flaw: keepsCollectors, check: "ReopenAfterClose", wantReason: "register metrics"},
		{name: "keeps its route mounted", flaw: keepsRoute, check: "ReopenAfterClose", wantReason: "mount route"},
		{name: "ack fails", flaw: failsAck, check: "ReadAck", wantReason: "ack refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var failed []string
			ran := false
			for _, c := range conformance.Checks(harness(t, tt.flaw, 300*time.Millisecond)) {
				if tt.check != "" && c.Name != tt.check {
					continue // a flaw may upset other checks too; only its own is asserted
				}
				ran = true
				r := c.Run()
				if r.Name != c.Name {
					t.Errorf("result named %q for check %q", r.Name, c.Name)
				}
				if r.Status == conformance.Failed {
					failed = append(failed, r.Name)
				}
				if r.Name != tt.check {
					continue
				}
				if r.Status != conformance.Failed || !strings.Contains(r.Reason, tt.wantReason) {
					t.Errorf("%s: %s (%q), want fail with %q", r.Name, r.Status, r.Reason, tt.wantReason)
				}
			}
			if !ran {
				t.Fatalf("the kit has no check %q", tt.check)
			}
			if tt.check == "" && len(failed) > 0 {
				t.Errorf("checks %v failed on a sound source", failed)
			}
		})
	}
}

func TestHarnessWithoutProduce(t *testing.T) {
	checks := conformance.Checks(conformance.Harness{New: func(conformance.TB) core.Source { return core.SourceFunc(nil) }})
	if len(checks) != 1 {
		t.Fatalf("%d checks, want the one saying what is missing", len(checks))
	}
	r := checks[0].Run()
	if r.Status != conformance.Failed || !strings.Contains(r.Reason, "Harness.New and Harness.Produce are required") {
		t.Fatalf("result %+v", r)
	}
}

// TestCheckRun checks the outcome of checks as values: the status, the
// reason, what ran and in which order.
func TestCheckRun(t *testing.T) {
	tests := []struct {
		name       string
		f          func(t conformance.TB, trace *[]string)
		limit      time.Duration
		want       conformance.Status
		wantReason string
		wantTrace  string
		wantLog    string
	}{
		{name: "pass", f: func(t conformance.TB, trace *[]string) { t.Logf("hello %d", 1) },
			want: conformance.Passed, wantLog: "hello 1"},
		{name: "error goes on", f: func(t conformance.TB, trace *[]string) {
			t.Errorf("first %s", "problem")
			t.Error("second")
			*trace = append(*trace, "after")
		}, want: conformance.Failed, wantReason: "first problem\nsecond", wantTrace: "after"},
		{name: "fatal stops", f: func(t conformance.TB, trace *[]string) {
			defer func() { *trace = append(*trace, "deferred") }()
			t.Fatalf("broken %d", 7)
			*trace = append(*trace, "after")
		}, want: conformance.Failed, wantReason: "broken 7", wantTrace: "deferred"},
		{name: "skip", f: func(t conformance.TB, trace *[]string) {
			t.Skip("no produce hook")
			*trace = append(*trace, "after")
		}, want: conformance.Skipped, wantReason: "no produce hook"},
		{name: "panic fails", f: func(t conformance.TB, trace *[]string) { panic("boom") },
			want: conformance.Failed, wantReason: "panic: boom"},
		{name: "cleanups run last first, after the context ends", f: func(t conformance.TB, trace *[]string) {
			t.Cleanup(func() { *trace = append(*trace, "first") })
			t.Cleanup(func() { *trace = append(*trace, "second, context "+context.Cause(t.Context()).Error()) })
			*trace = append(*trace, "body")
		}, want: conformance.Passed, wantTrace: "body,second, context context canceled,first"},
		{name: "temporary directories removed after cleanups", f: func(t conformance.TB, trace *[]string) {
			dir := t.TempDir()
			if dir == t.TempDir() {
				t.Error("TempDir returned the same directory twice")
			}
			t.Cleanup(func() {
				_, err := os.Stat(dir)
				*trace = append(*trace, "exists in cleanup: "+strconv.FormatBool(err == nil))
			})
			t.Cleanup(func() {}) // registered later, runs first
			*trace = append(*trace, dir)
		}, want: conformance.Passed},
		{name: "abandoned after its limit", limit: 50 * time.Millisecond, f: func(t conformance.TB, trace *[]string) {
			<-t.Context().Done() // cancelled once the check is abandoned
		}, want: conformance.Failed, wantReason: "did not finish within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var trace []string
			r := conformance.Check{Name: "x/" + tt.name, Limit: tt.limit, Func: func(ct conformance.TB) {
				if ct.Name() != "x/"+tt.name {
					ct.Errorf("Name() = %q", ct.Name())
				}
				mu.Lock()
				defer mu.Unlock()
				tt.f(ct, &trace)
			}}.Run()
			if r.Name != "x/"+tt.name || r.Status != tt.want {
				t.Fatalf("result %q %s (%q), want %s", r.Name, r.Status, r.Reason, tt.want)
			}
			if !strings.HasPrefix(r.Reason, tt.wantReason) {
				t.Errorf("reason %q, want it to start with %q", r.Reason, tt.wantReason)
			}
			if tt.wantLog != "" && strings.Join(r.Log, "\n") != tt.wantLog {
				t.Errorf("log %q, want %q", r.Log, tt.wantLog)
			}
			if r.Duration <= 0 {
				t.Errorf("duration %s", r.Duration)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.name == "temporary directories removed after cleanups" {
				if len(trace) != 2 || trace[1] != "exists in cleanup: true" {
					t.Fatalf("trace %q", trace)
				}
				if _, err := os.Stat(trace[0]); !os.IsNotExist(err) {
					t.Errorf("temporary directory %s left behind: %v", trace[0], err)
				}
				return
			}
			if got := strings.Join(trace, ","); got != tt.wantTrace {
				t.Errorf("trace %q, want %q", got, tt.wantTrace)
			}
		})
	}
}
