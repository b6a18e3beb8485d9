package conformance

import (
	"time"

	"github.com/tributary/tributary/core"
)

// The sink kit: every sink connector runs it, as every source runs the
// kit above, with a small harness:
//
//	func TestSinkConformance(t *testing.T) {
//		rec := newReceiver(t) // the target, recording what it took
//		conformance.RunSink(t, conformance.SinkHarness{
//			New:      func(t conformance.TB) core.Sink { ... configured to deliver to rec ... },
//			Received: rec.received,
//			Fail:     rec.fail, Refuse: rec.refuse, Recover: rec.recover,
//			Capabilities: conformance.SinkCapabilities{Targeted: true},
//		})
//	}
//
// The checks drive a sink as the runtime does (core.Sink): one configured
// value is opened, written to, closed, and opened again. They make their
// own events, with ids of their own, so that a target shared by every
// check (one test receiver) serves them all.

// SinkHarness connects the sink kit to one sink and the target behind it.
type SinkHarness struct {
	// New returns a new sink, already configured, delivering to the target
	// under test. Every call delivers to the same target.
	New func(t TB) core.Sink
	// Received returns what the target took so far, in the order it took
	// it: one Delivered per delivery it accepted (a failed or refused
	// attempt is not one). It may hold deliveries of earlier checks; the
	// kit looks only at its own event ids.
	Received func() []Delivered
	// Env returns the environment to open sinks with; the kit calls it
	// once per check. The default is DefaultEnv.
	Env func(t TB) core.Env
	// Data, when set, gives the Delivery.Data of each event the kit
	// writes, as a sink's map would; by default Data is nil and the sink
	// delivers the event as it is.
	Data func(ev *core.Event) any

	// Fail makes the target fail the deliveries of the events with the
	// given ids transiently (a 503, a timeout, a dropped connection) until
	// Recover: the sink must answer StatusRetry. Optional: without it, the
	// checks that need it are skipped, with Capabilities.FailReason.
	Fail func(t TB, ids []string)
	// Refuse makes the target refuse the deliveries of the events with
	// the given ids for good (a 4xx, a row that breaks a constraint) until
	// Recover: the sink must answer StatusFailed. Optional, like Fail,
	// with Capabilities.RefuseReason.
	Refuse func(t TB, ids []string)
	// Stall makes the target stop answering (it takes a request and never
	// replies) until Recover, so that the kit can cancel a Write in
	// flight. Optional, with Capabilities.StallReason.
	Stall func(t TB)
	// Recover makes the target take every delivery again. It is required
	// with Fail, Refuse or Stall.
	Recover func(t TB)

	// Capabilities declares what the sink and its harness promise.
	Capabilities SinkCapabilities
	// Timeout bounds each wait (Open, Close, a Write). Default 15s. A
	// whole check is abandoned after ten times Timeout.
	Timeout time.Duration
}

// Delivered is one delivery a target took.
type Delivered struct {
	// ID is the id of the event delivered.
	ID string
}

// SinkCapabilities declares what a sink and its harness promise. A missing
// hook or a false capability takes a reason, shown when the checks that
// need it are skipped.
type SinkCapabilities struct {
	// Targeted: Fail and Refuse fail only the events whose ids they are
	// given, and the target takes the others. False when the harness can
	// only fail the whole target (stop a database): Fail and Refuse then
	// fail every delivery, and the checks that need a target failing one
	// event among others are skipped.
	Targeted       bool
	TargetedReason string
	// FailReason, RefuseReason and StallReason say why the harness has no
	// Fail, Refuse or Stall hook.
	FailReason   string
	RefuseReason string
	StallReason  string
}

// SinkChecks returns the sink kit's checks against h, in the order they
// should run. A harness without New or Received, or with a failure hook
// and no Recover, gives one failing check, SinkHarness, that says so.
func SinkChecks(h SinkHarness) []Check {
	if msg := h.problem(); msg != "" {
		return []Check{{Name: "SinkHarness", Func: func(t TB) { t.Fatal(msg) }}}
	}
	if h.Timeout <= 0 {
		h.Timeout = 15 * time.Second
	}
	if h.Env == nil {
		h.Env = DefaultEnv
	}
	checks := []struct {
		name string
		f    func(TB, SinkHarness)
	}{
		{"OpenClose", testSinkOpenClose},
		{"CloseWithoutOpen", testSinkCloseWithoutOpen},
		{"CloseAfterFailedOpen", testSinkCloseAfterFailedOpen},
		{"ReopenAfterClose", testSinkReopen},
		{"WriteResults", testSinkWriteResults},
		{"OrderPerKeyUnderConcurrency", testSinkConcurrentOrder},
		{"NoDeliveryAfterFailedKey", testSinkHoldsKey},
		{"RetryThenSuccess", testSinkRetry},
		{"PermanentFailure", testSinkRefused},
		{"WriteStopsOnCancel", testSinkCancel},
		{"CancelWriteInFlight", testSinkCancelInFlight},
		{"NoGoroutineLeak", testSinkLeak},
		{"RedeliveryAfterCrash", testSinkRedelivery},
		{"DeadLetterThroughRuntime", testSinkDeadLetter},
	}
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = Check{Name: c.name, Func: func(t TB) { c.f(t, h) }, Limit: 10 * h.Timeout}
	}
	return out
}

// RunSink runs every sink check against the harness, each as a subtest of
// t (a *testing.T):
//
//	conformance.RunSink(t, h)
func RunSink[T Tester[T]](t T, h SinkHarness) {
	t.Helper()
	RunChecks(t, SinkChecks(h))
}

// problem says what the harness lacks, or "".
func (h SinkHarness) problem() string {
	switch {
	case h.New == nil || h.Received == nil:
		return "conformance: SinkHarness.New and SinkHarness.Received are required"
	case (h.Fail != nil || h.Refuse != nil || h.Stall != nil) && h.Recover == nil:
		return "conformance: SinkHarness.Recover is required with Fail, Refuse or Stall: the kit makes the target recover after each failure it stages"
	}
	return ""
}
