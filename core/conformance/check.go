package conformance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// TB is what a check and a harness report through: the part of
// testing.TB the kit uses, so that *testing.T and *testing.B satisfy it
// and a harness's helpers can take either. Inside a kit, the kit provides
// it (see Check.Run), without package testing.
type TB interface {
	// Name names the check, unique within one run of a kit.
	Name() string
	Helper()
	// Cleanup registers f to run after the check, last registered first.
	Cleanup(f func())
	// TempDir returns a new directory removed after the check's cleanups.
	TempDir() string
	// Context is cancelled just before the cleanups run.
	Context() context.Context
	Log(args ...any)
	Logf(format string, args ...any)
	Error(args ...any)
	Errorf(format string, args ...any)
	// Fatal, Fatalf, Skip and Skipf end the check; call them from the
	// goroutine that runs it.
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Skipf(format string, args ...any)
	Failed() bool
}

// Status is the outcome of one check.
type Status string

// The outcomes of a check.
const (
	Passed  Status = "pass"
	Failed  Status = "fail"
	Skipped Status = "skip"
)

// Result is what one check found.
type Result struct {
	// Name names the check, such as "ResumeAfterPartialAck". A kit that
	// groups checks joins the names with "/" ("Conformance/ReadAck").
	Name string
	// Status is passed, failed or skipped.
	Status Status
	// Reason says why the check failed or was skipped: its error or skip
	// messages, one per line. It is empty when the check passed.
	Reason string
	// Log holds the lines the check logged, in order.
	Log []string
	// Duration is how long the check ran, cleanups included.
	Duration time.Duration
}

// Check is one named check of a kit.
type Check struct {
	// Name names the check (see Result.Name).
	Name string
	// Func performs the check, reporting through t.
	Func func(t TB)
	// Limit bounds the check, and again each of its cleanups. A check
	// still running after it is abandoned and fails; zero means no bound.
	Limit time.Duration
}

// Run runs c on a goroutine of its own and returns its result. As in
// package testing, t.Fatal and t.Skip end the check, t.Error marks it
// failed and goes on, a panic fails it, and cleanups run after it, last
// registered first. A check that outlives its Limit fails, and its
// goroutine is left behind: the process running the kit should end soon.
func (c Check) Run() Result {
	ct := &checkT{name: c.Name}
	ct.ctx, ct.cancel = context.WithCancel(context.Background())
	start := time.Now()
	if !ct.guard(func() { c.Func(ct) }, c.Limit) {
		ct.fail(fmt.Sprintf("did not finish within %s; a call into the source (or the system behind it) never returned", c.Limit))
	}
	ct.cancel()
	for f := ct.popCleanup(); f != nil; f = ct.popCleanup() {
		if !ct.guard(f, c.Limit) {
			ct.fail(fmt.Sprintf("a cleanup did not finish within %s", c.Limit))
			break
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	r := Result{Name: c.Name, Status: Passed, Log: slices.Clone(ct.logs), Duration: time.Since(start)}
	switch {
	case ct.failed:
		r.Status, r.Reason = Failed, strings.Join(ct.errors, "\n")
	case ct.skipped:
		r.Status, r.Reason = Skipped, strings.Join(ct.errors, "\n")
	}
	return r
}

// Tester is the part of *testing.T that RunChecks reports through;
// *testing.T satisfies Tester[*testing.T]. The kit names it rather than
// *testing.T so that a program running checks as values does not link
// package testing.
type Tester[T any] interface {
	Helper()
	Run(name string, f func(t T)) bool
	Log(args ...any)
	Error(args ...any)
	Skip(args ...any)
}

// RunChecks runs each check as a subtest of t, named after it, and
// reports its result there: a failed check fails its subtest with the
// reason, a skipped one skips with it, and what the check logged is logged.
// Subtests that `go test -run` filters out do not run their check.
func RunChecks[T Tester[T]](t T, checks []Check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.Name, func(t T) {
			t.Helper()
			r := c.Run()
			for _, l := range r.Log {
				t.Log(l)
			}
			switch r.Status {
			case Failed:
				t.Error(r.Reason)
			case Skipped:
				t.Skip(r.Reason)
			}
		})
	}
}

// checkT is the TB a check runs with.
type checkT struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	failed   bool
	skipped  bool
	errors   []string
	logs     []string
	cleanups []func()
	tempRoot string
}

var _ TB = (*checkT)(nil)

// guard runs f on a new goroutine, turning a panic into a failure, and
// waits until f returns (or exits through Fatal or Skip) or limit passes
// (zero: no limit). It reports whether f ended.
func (c *checkT) guard(f func(), limit time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				c.fail(fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		f()
	}()
	if limit <= 0 {
		<-done
		return true
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

func (c *checkT) fail(msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failed = true
	c.errors = append(c.errors, msg)
}

func (c *checkT) popCleanup() func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.cleanups)
	if n == 0 {
		return nil
	}
	f := c.cleanups[n-1]
	c.cleanups = c.cleanups[:n-1]
	return f
}

func (c *checkT) Name() string             { return c.name }
func (c *checkT) Helper()                  {}
func (c *checkT) Context() context.Context { return c.ctx }

func (c *checkT) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

func (c *checkT) TempDir() string {
	c.mu.Lock()
	root := c.tempRoot
	c.mu.Unlock()
	if root == "" {
		pattern := "tributary-conformance-" + strings.NewReplacer("/", "_", " ", "_", string(filepath.Separator), "_").Replace(c.name) + "-"
		var err error
		if root, err = os.MkdirTemp("", pattern); err != nil {
			c.Fatalf("TempDir: %v", err)
		}
		c.mu.Lock()
		c.tempRoot = root
		c.mu.Unlock()
		c.Cleanup(func() { os.RemoveAll(root) })
	}
	dir, err := os.MkdirTemp(root, "")
	if err != nil {
		c.Fatalf("TempDir: %v", err)
	}
	return dir
}

func (c *checkT) Log(args ...any) { c.Logf("%s", fmt.Sprintln(args...)) }

func (c *checkT) Logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logs = append(c.logs, strings.TrimSuffix(fmt.Sprintf(format, args...), "\n"))
}

func (c *checkT) Error(args ...any) { c.fail(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (c *checkT) Errorf(format string, args ...any) { c.fail(fmt.Sprintf(format, args...)) }

func (c *checkT) Fatal(args ...any) {
	c.Error(args...)
	runtime.Goexit()
}

func (c *checkT) Fatalf(format string, args ...any) {
	c.Errorf(format, args...)
	runtime.Goexit()
}

func (c *checkT) Skip(args ...any) { c.skip(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

func (c *checkT) Skipf(format string, args ...any) { c.skip(fmt.Sprintf(format, args...)) }

func (c *checkT) skip(msg string) {
	c.mu.Lock()
	c.skipped = true
	c.errors = append(c.errors, msg)
	c.mu.Unlock()
	runtime.Goexit()
}

func (c *checkT) Failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}
