// Package conformance is the kit every source connector runs: open and close
// within a deadline, reads that stop on cancel, acknowledgement, reopening
// the same value after Close, resume after a partial ack with nothing lost,
// no goroutine leaks, and a run through the real runtime. Shipped
// connectors and custom ones run the same checks:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			New:     func(t conformance.TB) core.Source { ... },
//			Produce: func(t conformance.TB, n int) { ... },
//			Capabilities: conformance.Capabilities{Resume: true},
//		})
//	}
//
// The checks drive a source as the runtime does (core.Source): one
// configured value is opened, read, acked and closed, then opened again
// on the same value, as after an error or an operator's restart.
//
// The kit does not import package testing. Checks returns the checks as
// values and Check.Run returns each one's Result, so that a program can run
// them (`tributary plugin test` does); Run reports them as subtests of a
// go test. A capability a connector lacks is declared false with a reason;
// the kit then skips the checks that depend on it and says why.
package conformance

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// Harness connects the kit to one connector and the system behind it.
type Harness struct {
	// New returns a new source, already configured, reading the system
	// under test. Every call within one check reads the same system; each
	// check calls it for the values it drives.
	New func(t TB) core.Source
	// Produce makes n new changes appear in the system. It is called while
	// a source is open.
	Produce func(t TB, n int)
	// Env returns the environment to open sources with. The kit calls it
	// once per check and reuses it across reopens, so state directories
	// persist as they would across restarts. The default gives a temporary
	// state directory and, in HTTP, a router served on a local test server
	// whose URL is available through ServerURL.
	Env func(t TB) core.Env
	// Capabilities declares what the connector promises.
	Capabilities Capabilities
	// Timeout bounds each wait (Open, Close, reading the produced changes).
	// Default 15s. A whole check is abandoned after ten times Timeout.
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

// Checks returns the kit's checks against h, in the order they should
// run. A harness without New or Produce gives one failing check, Harness,
// that says so.
func Checks(h Harness) []Check {
	if h.New == nil || h.Produce == nil {
		return []Check{{Name: "Harness", Func: func(t TB) {
			t.Fatal("conformance: Harness.New and Harness.Produce are required")
		}}}
	}
	if h.Timeout <= 0 {
		h.Timeout = 15 * time.Second
	}
	if h.Env == nil {
		h.Env = DefaultEnv
	}
	checks := []struct {
		name string
		f    func(TB, Harness)
	}{
		{"OpenClose", testOpenClose},
		{"CloseWithoutOpen", testCloseWithoutOpen},
		{"ReadStopsOnCancel", testReadCancel},
		{"ReadAck", testReadAck},
		{"ReopenAfterClose", testReopen},
		{"ResumeAfterPartialAck", testResume},
		{"NoGoroutineLeak", testLeak},
		{"ThroughRuntime", testRuntime},
	}
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = Check{Name: c.name, Func: func(t TB) { c.f(t, h) }, Limit: 10 * h.Timeout}
	}
	return out
}

// Run runs every check against the harness, each as a subtest of t
// (a *testing.T):
//
//	conformance.Run(t, h)
func Run[T Tester[T]](t T, h Harness) {
	t.Helper()
	RunChecks(t, Checks(h))
}

// DefaultEnv returns an Env like the one the runtime lends: a temporary
// state directory, a discarding logger, an HTTP router served by an
// httptest server (closed at the end of the check), an admin router and a
// metrics registry of the check's own. ServerURL returns the HTTP server's
// URL. A source reopened with it finds its routes and collectors as the
// runtime would: still there unless its Close removed them.
func DefaultEnv(t TB) core.Env {
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	servers.set(t, srv.URL)
	return core.Env{
		Name:     "conformance",
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		StateDir: t.TempDir(),
		HTTP:     router,
		Admin:    runtime.NewRouter(),
		Metrics:  prometheus.NewRegistry(),
	}
}

// ServerURL returns the base URL of the HTTP router DefaultEnv made for t,
// for harnesses that push changes over HTTP.
func ServerURL(t TB) string { return servers.get(t) }
