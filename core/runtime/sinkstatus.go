package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// This file is a sink's supervisor: its state and status, pause and
// resume, and supervise, which runs one session after another, with
// backoff after an error. sinkloop.go holds the session.

// Sink states shown in status, besides the connector states starting,
// running, retrying, failed, stopped and disabled.
const (
	// StatePaused: an operator paused the sink; it delivers nothing and
	// commits nothing until resumed, and keeps its subscription. A paused
	// connector (PauseConnector) is in this state too: it reads nothing
	// and its checkpoint stays where its last session committed it.
	StatePaused = "paused"
	// StateCircuitOpen: the target failed every recent delivery; the
	// sink stopped delivering and probes it with one event now and then.
	StateCircuitOpen = "circuit_open"
)

// The states of a sink's circuit breaker.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half_open"
)

// SinkStatus is one sink's state for /v1/sinks.
type SinkStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	State string `json:"state"`
	// Since is when the sink entered State.
	Since time.Time `json:"since"`
	// Error is why the sink is retrying, failed or has its circuit open;
	// it is empty while it runs.
	Error string `json:"error,omitempty"`
	// LastError is the most recent error, also of a delivery that was
	// retried; it is kept after recovery.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Lag counts the events read from the stream and not committed yet.
	Lag int64 `json:"lag"`
	// LagSeconds is the age of the oldest of them.
	LagSeconds   float64 `json:"lag_seconds"`
	Delivered    uint64  `json:"delivered"`
	Retried      uint64  `json:"retried"`
	DeadLettered uint64  `json:"dead_lettered"`
	Skipped      uint64  `json:"skipped"`
	// RetriesPending counts the events waiting for another attempt.
	RetriesPending int `json:"retries_pending"`
	// Circuit is the circuit breaker's state: closed, open or half_open.
	Circuit string `json:"circuit"`
}

// sinkTuning holds the timings of a sink that tests shorten.
type sinkTuning struct {
	// failures is how many Write results in a row asking to retry with
	// an error open the circuit.
	failures int
	// probe is the wait before the first probe of an open circuit,
	// doubling up to maxProbe.
	probe, maxProbe time.Duration
	// open is the backoff of a failed Open or session.
	open Backoff
	// parkAfter is the shortest wait for a retry that parks the key's
	// events in the retry store rather than in memory.
	parkAfter time.Duration
}

var defaultSinkTuning = sinkTuning{
	failures:  10,
	probe:     30 * time.Second,
	maxProbe:  5 * time.Minute,
	open:      Backoff{Initial: time.Second, Max: time.Minute},
	parkAfter: 30 * time.Second,
}

// sinkRunner runs one sink.
type sinkRunner struct {
	r         *Runtime
	cfg       Sink
	log       *slog.Logger
	topics    []string
	topicsErr error
	tuning    sinkTuning
	m         sinkSeries

	mu       sync.Mutex
	state    string
	since    time.Time
	stateErr string
	lastErr  string
	errTime  time.Time
	paused   bool
	circuit  string
	// wake tells the session's loop that paused changed.
	wake chan struct{}
	// restart is signalled by ResumeSink to start a failed sink again,
	// and by RestartSink; cancelSession ends the running session.
	restart       chan struct{}
	cancelSession context.CancelFunc
	// stop ends the sink's supervise, which closes exited; set by Run's
	// loop, which alone uses them.
	stop   context.CancelFunc
	exited chan struct{}

	lag            atomic.Int64
	oldest         atomic.Int64 // unix nanoseconds of the oldest uncommitted event; 0 when none
	retriesPending atomic.Int64
	delivered      atomic.Uint64
	retried        atomic.Uint64
	deadLettered   atomic.Uint64
	skipped        atomic.Uint64
}

// newSinkRunners checks opts.Sinks and returns their runners.
func newSinkRunners(r *Runtime, opts Options) ([]*sinkRunner, error) {
	sinks, err := checkSinks(opts)
	if err != nil {
		return nil, err
	}
	if len(sinks) == 0 {
		return nil, nil
	}
	r.sinkM = newSinkMetrics(opts.Registerer)
	var out []*sinkRunner
	for _, cfg := range sinks {
		out = append(out, newSinkRunner(r, cfg))
	}
	return out, nil
}

// newSinkRunner returns the runner of a checked sink.
func newSinkRunner(r *Runtime, cfg Sink) *sinkRunner {
	s := &sinkRunner{
		r:       r,
		cfg:     cfg,
		log:     r.log.With("sink", cfg.Name),
		tuning:  defaultSinkTuning,
		m:       r.sinkM.series(cfg.Name),
		state:   StateStarting,
		since:   time.Now(),
		circuit: CircuitClosed,
		wake:    make(chan struct{}, 1),
		restart: make(chan struct{}, 1),
	}
	s.topics, s.topicsErr = sinkTopics(r.opts.Topics, r.opts.EventTypes, &s.cfg)
	if s.topicsErr != nil {
		s.topicsErr = core.Fatal(fmt.Errorf("sink %q: %w", cfg.Name, s.topicsErr))
	}
	return s
}

// setState moves the sink to state; err is why, for retrying, failed and
// circuit_open. Running clears the error.
func (s *sinkRunner) setState(state string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != state {
		s.state, s.since = state, time.Now()
	}
	switch {
	case err != nil:
		s.stateErr = err.Error()
		s.lastErr, s.errTime = s.stateErr, time.Now()
	case state == StateRunning || state == StateStopped || state == StateDisabled:
		s.stateErr = ""
	}
	if state != StateCircuitOpen {
		s.circuit = CircuitClosed
	}
	s.setUp()
}

// setCircuit records the circuit's state; an open circuit puts the sink
// in state circuit_open, a closed one back to running.
func (s *sinkRunner) setCircuit(c string, err error) {
	if c == CircuitClosed {
		s.setState(StateRunning, nil)
		return
	}
	s.setState(StateCircuitOpen, err)
	s.mu.Lock()
	s.circuit = c
	s.mu.Unlock()
}

// effective returns the state shown: paused overrides running and
// circuit_open. Called with mu held.
func (s *sinkRunner) effective() string {
	if s.paused && (s.state == StateRunning || s.state == StateCircuitOpen) {
		return StatePaused
	}
	return s.state
}

// setUp sets the up gauge from the state shown. Called with mu held.
func (s *sinkRunner) setUp() {
	up := 0.0
	if s.effective() == StateRunning {
		up = 1
	}
	s.m.up.Set(up)
}

func (s *sinkRunner) recordError(err error) {
	s.mu.Lock()
	s.lastErr, s.errTime = err.Error(), time.Now()
	s.mu.Unlock()
}

func (s *sinkRunner) isPaused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

// setPaused pauses or resumes the sink; a resumed sink that failed starts
// again.
func (s *sinkRunner) setPaused(p bool) {
	s.mu.Lock()
	was := s.effective()
	s.paused = p
	if now := s.effective(); now != was {
		s.since = time.Now()
	}
	failed := s.state == StateFailed
	s.setUp()
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if !p && failed && s.topicsErr == nil {
		select {
		case s.restart <- struct{}{}:
		default:
		}
	}
}

func (s *sinkRunner) status() SinkStatus {
	s.mu.Lock()
	st := SinkStatus{
		Name: s.cfg.Name, Type: s.cfg.Type, State: s.effective(), Since: s.since,
		Error: s.stateErr, LastError: s.lastErr, LastErrorTime: s.errTime, Circuit: s.circuit,
	}
	s.mu.Unlock()
	st.Lag = s.lag.Load()
	if o := s.oldest.Load(); o != 0 {
		st.LagSeconds = max(0, time.Since(time.Unix(0, o)).Seconds())
	}
	st.Delivered = s.delivered.Load()
	st.Retried = s.retried.Load()
	st.DeadLettered = s.deadLettered.Load()
	st.Skipped = s.skipped.Load()
	st.RetriesPending = int(s.retriesPending.Load())
	return st
}

// updateGauges sets the lag gauges from the counters.
func (s *sinkRunner) updateGauges() {
	s.m.lagEvents.Set(float64(s.lag.Load()))
	secs := 0.0
	if o := s.oldest.Load(); o != 0 {
		secs = max(0, time.Since(time.Unix(0, o)).Seconds())
	}
	s.m.lagSeconds.Set(secs)
}

// supervise runs sessions until ctx is done. An error is retried with
// backoff; a fatal one, or a target that is gone, leaves the sink failed
// until ResumeSink.
func (s *sinkRunner) supervise(ctx context.Context) {
	if s.topicsErr != nil {
		s.setState(StateFailed, s.topicsErr)
		s.log.Error("sink cannot start", "err", s.topicsErr)
		<-ctx.Done()
		return
	}
	attempt := 0
	for {
		select {
		case <-s.restart:
		default:
		}
		started := time.Now()
		sctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		s.cancelSession = cancel
		s.mu.Unlock()
		err := s.session(sctx)
		s.mu.Lock()
		s.cancelSession = nil
		s.mu.Unlock()
		restarted := sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			s.setState(StateStopped, nil)
			s.log.Info("sink stopped")
			return
		}
		if restarted {
			s.log.Info("sink restarting on request")
			attempt = 0
			continue
		}
		if errors.Is(err, core.ErrFatal) || errors.Is(err, core.ErrSinkGone) {
			s.setState(StateFailed, err)
			s.log.Error("sink failed; it stays stopped until it is resumed (POST /v1/sinks/"+s.cfg.Name+"/resume) or the sidecar restarts", "err", err)
			select {
			case <-s.restart:
				s.log.Info("sink restarting on request")
				attempt = 0
				continue
			case <-ctx.Done():
				s.setState(StateStopped, nil)
				return
			}
		}
		d := s.tuning.open.after(&attempt, time.Since(started), err)
		s.setState(StateRetrying, err)
		s.log.Warn("sink error, retrying", "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.restart:
			t.Stop()
			s.log.Info("sink restarting on request")
			attempt = 0
		case <-ctx.Done():
			t.Stop()
			s.setState(StateStopped, nil)
			return
		}
	}
}

// RestartSink starts the named sink's session again without restarting
// the sidecar: a running one stops as on shutdown (what it delivered is
// committed) and opens again from its group's committed offsets; a
// retrying one skips the rest of its backoff; a failed one starts again.
// A paused sink stays paused. It returns an error wrapping ErrNoSink for
// an unknown name.
func (r *Runtime) RestartSink(name string) error {
	s, err := r.sink(name)
	if err != nil {
		return err
	}
	if s.topicsErr != nil {
		return s.topicsErr
	}
	s.mu.Lock()
	cancel := s.cancelSession
	s.mu.Unlock()
	select {
	case s.restart <- struct{}{}:
	default:
	}
	if cancel != nil {
		cancel()
	}
	s.log.Info("sink restart requested")
	return nil
}

// PauseSink stops the named sink delivering: Writes in progress finish,
// no new one starts and nothing more is committed, while the sink keeps
// its subscription. It returns an error wrapping ErrNoSink for an unknown
// name.
func (r *Runtime) PauseSink(name string) error {
	s, err := r.sink(name)
	if err != nil {
		return err
	}
	s.setPaused(true)
	s.log.Info("sink paused")
	return nil
}

// ResumeSink makes a paused sink deliver again, and starts a failed one
// again (a target that answered 410 Gone, say, and is back). It returns an
// error wrapping ErrNoSink for an unknown name.
func (r *Runtime) ResumeSink(name string) error {
	s, err := r.sink(name)
	if err != nil {
		return err
	}
	s.setPaused(false)
	s.log.Info("sink resumed")
	return nil
}

func (r *Runtime) sink(name string) (*sinkRunner, error) {
	for _, s := range r.sinkList() {
		if s.cfg.Name != name {
			continue
		}
		if s.cfg.Disabled {
			return nil, fmt.Errorf("sink %q is disabled in the configuration", name)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w named %q", ErrNoSink, name)
}

// sinkStatuses returns the status of every sink.
func (r *Runtime) sinkStatuses() []SinkStatus {
	var out []SinkStatus
	for _, s := range r.sinkList() {
		out = append(out, s.status())
	}
	return out
}
