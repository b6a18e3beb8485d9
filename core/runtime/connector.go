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

// This file is a connector's supervisor: its state and status, and
// supervise, which runs one session after another, with backoff after an
// error and at once on Restart. session.go holds the session it runs.

// Connector states shown in status.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateRetrying = "retrying"
	StateFailed   = "failed"
	StateStopped  = "stopped"
	StateDisabled = "disabled"
)

// ConnectorStatus is one connector's state for /v1/connectors.
type ConnectorStatus struct {
	Name  string    `json:"name"`
	Type  string    `json:"type"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Error is why the connector is retrying or failed; it is empty while
	// it runs.
	Error     string    `json:"error,omitempty"`
	ErrorTime time.Time `json:"error_time,omitzero"`
	// LastError is the most recent error of any stage, also one that was
	// retried without leaving the running state (a publish, an ack); it
	// is kept after recovery.
	LastError      string         `json:"last_error,omitempty"`
	LastErrorTime  time.Time      `json:"last_error_time,omitzero"`
	Retries        int            `json:"retries"`
	NextRetry      time.Time      `json:"next_retry,omitzero"`
	Restarts       int            `json:"restarts,omitempty"`
	Checkpoint     string         `json:"checkpoint,omitempty"`
	CheckpointTime time.Time      `json:"checkpoint_time,omitzero"`
	CaughtUp       time.Time      `json:"caught_up,omitzero"`
	ChangesRead    uint64         `json:"changes_read"`
	EventsEmitted  uint64         `json:"events_emitted"`
	DeadLettered   uint64         `json:"dead_lettered"`
	Errors         uint64         `json:"errors"`
	InFlight       int            `json:"in_flight"`
	Source         map[string]any `json:"source,omitempty"`
}

type connector struct {
	r   *Runtime
	cfg Connector
	log *slog.Logger

	mu        sync.Mutex
	state     string
	since     time.Time
	stateErr  string
	stateTime time.Time
	lastErr   string
	errTime   time.Time
	retries   int
	restarts  int
	nextRetry time.Time
	cpPos     core.Position
	cpTime    time.Time
	// restart is signalled by Restart; cancelSession ends the running
	// session.
	restart       chan struct{}
	cancelSession context.CancelFunc
	// paused is set by PauseConnector; wake tells supervise that paused
	// changed. changed is closed (and replaced) on every state change.
	paused  bool
	wake    chan struct{}
	changed chan struct{}
	// stop ends supervise, which closes exited; set by Run's loop, which
	// alone uses them.
	stop   context.CancelFunc
	exited chan struct{}

	changesRead   atomic.Uint64
	eventsEmitted atomic.Uint64
	deadLettered  atomic.Uint64
	errCount      atomic.Uint64
	inFlight      atomic.Int64
	provisioned   bool
	// opened is set by the first successful Open: until then the
	// connector keeps the sidecar unready.
	opened atomic.Bool
}

func newConnector(r *Runtime, cfg Connector) *connector {
	return &connector{
		r:       r,
		cfg:     cfg,
		log:     r.log.With("connector", cfg.Name),
		state:   StateStarting,
		since:   time.Now(),
		restart: make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
	}
}

// setState moves the connector to state; err is why, for retrying and
// failed. Running clears the error: the connector recovered.
func (c *connector) setState(state string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != state {
		c.state, c.since = state, time.Now()
		close(c.changed)
		c.changed = make(chan struct{})
	}
	switch {
	case err != nil:
		c.stateErr, c.stateTime = err.Error(), time.Now()
		c.lastErr, c.errTime = c.stateErr, c.stateTime
	case state == StateRunning || state == StateStopped || state == StateDisabled || state == StatePaused:
		c.stateErr, c.stateTime = "", time.Time{}
	}
	if state == StateRunning {
		c.nextRetry = time.Time{}
	}
	up := 0.0
	if state == StateRunning {
		up = 1
	}
	c.r.metrics.Up.WithLabelValues(c.cfg.Name).Set(up)
}

func (c *connector) recordError(stage string, err error) {
	c.errCount.Add(1)
	c.r.metrics.Errors.WithLabelValues(c.cfg.Name, stage).Inc()
	c.mu.Lock()
	c.lastErr, c.errTime = fmt.Sprintf("%s: %v", stage, err), time.Now()
	c.mu.Unlock()
}

func (c *connector) status() ConnectorStatus {
	c.mu.Lock()
	st := ConnectorStatus{
		Name: c.cfg.Name, Type: c.cfg.Type, State: c.state, Since: c.since,
		Error: c.stateErr, ErrorTime: c.stateTime, LastError: c.lastErr, LastErrorTime: c.errTime,
		Retries: c.retries, NextRetry: c.nextRetry, Restarts: c.restarts,
		CheckpointTime: c.cpTime,
	}
	if !c.cpPos.IsZero() {
		st.Checkpoint = c.cpPos.String()
	}
	c.mu.Unlock()
	st.ChangesRead = c.changesRead.Load()
	st.EventsEmitted = c.eventsEmitted.Load()
	st.DeadLettered = c.deadLettered.Load()
	st.Errors = c.errCount.Load()
	st.InFlight = int(c.inFlight.Load())
	if f, ok := c.cfg.Source.(core.Freshness); ok {
		st.CaughtUp = f.CaughtUp()
	}
	if sr, ok := c.cfg.Source.(core.StatusReporter); ok && st.State == StateRunning {
		st.Source = sr.Status()
	}
	return st
}

// freshness is when the connector last showed it had everything of its
// system: its last checkpoint, or, when nothing is in flight, the last
// time its source confirmed it had caught up (core.Freshness), so that a
// quiet source does not look stale.
func (c *connector) freshness() time.Time {
	c.mu.Lock()
	t := c.cpTime
	c.mu.Unlock()
	if f, ok := c.cfg.Source.(core.Freshness); ok && c.inFlight.Load() == 0 {
		if cu := f.CaughtUp(); cu.After(t) {
			t = cu
		}
	}
	return t
}

func (c *connector) updateGauges() {
	if t := c.freshness(); !t.IsZero() {
		c.r.metrics.CheckpointAge.WithLabelValues(c.cfg.Name).Set(time.Since(t).Seconds())
	}
	c.r.metrics.InFlight.WithLabelValues(c.cfg.Name).Set(float64(c.inFlight.Load()))
}

// Restart asks the connector to start a new session now: a running one
// drains and closes first, a retrying one skips its backoff, a failed one
// starts again.
func (c *connector) Restart() {
	c.mu.Lock()
	c.restarts++
	cancel := c.cancelSession
	c.mu.Unlock()
	select {
	case c.restart <- struct{}{}:
	default:
	}
	if cancel != nil {
		cancel()
	}
}

// supervise runs sessions until ctx is done. An error is retried with
// backoff; a fatal one leaves the connector failed until Restart.
func (c *connector) supervise(ctx context.Context) {
	attempt := 0
	for {
		if !c.waitUnpaused(ctx) {
			c.setState(StateStopped, nil)
			c.log.Info("connector stopped")
			return
		}
		// A restart asked for before this session starts is served by it.
		select {
		case <-c.restart:
		default:
		}
		sctx, cancel := context.WithCancel(ctx)
		c.mu.Lock()
		if c.paused {
			// Paused since waitUnpaused looked: PauseConnector found no
			// session to end.
			c.mu.Unlock()
			cancel()
			continue
		}
		c.cancelSession = cancel
		c.mu.Unlock()
		started := time.Now()
		err := c.session(sctx)
		c.mu.Lock()
		c.cancelSession = nil
		c.mu.Unlock()
		restarted := sctx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil {
			c.setState(StateStopped, nil)
			c.log.Info("connector stopped")
			return
		}
		if restarted {
			if !c.isPaused() {
				c.log.Info("connector restarting on request")
			}
			attempt = 0
			continue
		}
		if errors.Is(err, core.ErrFatal) {
			c.setState(StateFailed, err)
			c.log.Error("connector failed; it stays stopped until it is restarted (POST /v1/connectors/"+c.cfg.Name+"/restart) or the sidecar restarts", "err", err)
			select {
			case <-c.restart:
				c.log.Info("connector restarting on request")
				attempt = 0
				continue
			case <-c.wake:
				// Paused (waitUnpaused holds it) or resumed (it starts
				// again).
				attempt = 0
				continue
			case <-ctx.Done():
				c.setState(StateStopped, nil)
				return
			}
		}
		d := c.cfg.Retry.after(&attempt, time.Since(started), err)
		c.mu.Lock()
		c.retries++
		c.nextRetry = time.Now().Add(d)
		c.mu.Unlock()
		c.setState(StateRetrying, err)
		c.log.Warn("connector error, retrying", "err", err, "in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.restart:
			t.Stop()
			c.log.Info("connector restarting on request")
			attempt = 0
		case <-c.wake:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			c.setState(StateStopped, nil)
			return
		}
	}
}
