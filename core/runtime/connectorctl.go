package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
)

// This file is what an operator does to a running connector: pause it,
// resume it, and set its checkpoint.

// isPaused reports whether PauseConnector paused the connector.
func (c *connector) isPaused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paused
}

// setPaused pauses or resumes the connector. Pausing ends the running
// session, which drains (its in-flight changes are published and their
// checkpoint committed) and closes the source.
func (c *connector) setPaused(p bool) {
	c.mu.Lock()
	c.paused = p
	var cancel context.CancelFunc
	if p {
		cancel = c.cancelSession
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	if cancel != nil {
		cancel()
	}
}

// waitUnpaused holds supervise while the connector is paused. It returns
// false when ctx is done first. A Restart resumes a paused connector.
func (c *connector) waitUnpaused(ctx context.Context) bool {
	for {
		c.mu.Lock()
		p := c.paused
		c.mu.Unlock()
		if !p {
			return true
		}
		c.mu.Lock()
		was := c.state
		c.mu.Unlock()
		if was != StatePaused {
			c.setState(StatePaused, nil)
			c.log.Info("connector paused")
		}
		select {
		case <-c.wake:
		case <-c.restart:
			c.mu.Lock()
			c.paused = false
			c.mu.Unlock()
			c.log.Info("connector restarting on request")
		case <-ctx.Done():
			return false
		}
	}
}

// waitState waits until the connector's state is one of states, or ctx is
// done.
func (c *connector) waitState(ctx context.Context, states ...string) error {
	for {
		c.mu.Lock()
		st, ch := c.state, c.changed
		c.mu.Unlock()
		for _, s := range states {
			if st == s {
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("connector %q is %s: %w", c.cfg.Name, st, ctx.Err())
		}
	}
}

// connector returns the named connector, or an error wrapping
// ErrNoConnector, or one saying it is disabled.
func (r *Runtime) connector(name string) (*connector, error) {
	for _, c := range r.connectorList() {
		if c.cfg.Name != name {
			continue
		}
		if c.cfg.Disabled {
			return nil, fmt.Errorf("connector %q is disabled in the configuration", name)
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w named %q", ErrNoConnector, name)
}

// PauseConnector stops the named connector reading: its session stops
// calling Read, publishes what it read, commits the checkpoint behind it
// and closes its source; the connector then shows state paused until
// ResumeConnector (or Restart). PauseConnector returns once the session
// has closed, or with ctx's error while it drains (the pause stands). It
// is harmless on a paused connector. An unknown name is an error wrapping
// ErrNoConnector; a disabled connector cannot be paused.
func (r *Runtime) PauseConnector(ctx context.Context, name string) error {
	c, err := r.connector(name)
	if err != nil {
		return err
	}
	c.setPaused(true)
	return c.waitState(ctx, StatePaused, StateStopped)
}

// ResumeConnector starts a paused connector again, from its checkpoint;
// a failed connector starts again too. It does not wait for the source to
// open. An unknown name is an error wrapping ErrNoConnector.
func (r *Runtime) ResumeConnector(name string) error {
	c, err := r.connector(name)
	if err != nil {
		return err
	}
	c.setPaused(false)
	c.log.Info("connector resumed")
	return nil
}

// ErrStreamNotOpen is returned by SetCheckpoint while the stream is not
// open.
var ErrStreamNotOpen = errors.New("the stream is not open")

// CheckpointChange is what SetCheckpoint did.
type CheckpointChange struct {
	// Old is the checkpoint replaced, nil when there was none.
	Old *core.Checkpoint `json:"old"`
	// New is the checkpoint stored.
	New core.Checkpoint `json:"checkpoint"`
	// Paused says the connector was paused to store it (and resumed from
	// it, unless it was paused before).
	Paused bool `json:"paused"`
}

// SetCheckpoint stores pos as the named connector's checkpoint. A
// connector with a session (starting, running, retrying) is paused first
// (PauseConnector: what it read is committed), then the position is
// stored, then it resumes from it, unless it was paused before; a failed,
// stopped, paused or disabled one only has its checkpoint stored (Restart
// or ResumeConnector then starts it from there). It returns the
// checkpoint replaced. While the connector drains, ctx bounds the wait;
// if ctx ends first, the connector stays paused and nothing is stored.
func (r *Runtime) SetCheckpoint(ctx context.Context, name string, pos core.Position) (CheckpointChange, error) {
	var c *connector
	for _, cc := range r.connectorList() {
		if cc.cfg.Name == name {
			c = cc
		}
	}
	if c == nil {
		return CheckpointChange{}, fmt.Errorf("%w named %q", ErrNoConnector, name)
	}
	r.mu.Lock()
	open := r.streamReady || r.streamState == "unreachable"
	r.mu.Unlock()
	if !open {
		return CheckpointChange{}, fmt.Errorf("set checkpoint of connector %q: %w", name, ErrStreamNotOpen)
	}
	var ch CheckpointChange
	var resume bool
	if !c.cfg.Disabled {
		c.mu.Lock()
		st, wasPaused := c.state, c.paused
		c.mu.Unlock()
		switch st {
		case StateFailed, StateStopped, StatePaused:
		default:
			if err := r.PauseConnector(ctx, name); err != nil {
				return ch, fmt.Errorf("pause connector %q to set its checkpoint: %w", name, err)
			}
			ch.Paused, resume = true, !wasPaused
		}
	}
	if resume {
		// From the new checkpoint, or from the old one when storing
		// failed.
		defer c.setPaused(false)
	}
	store := r.opts.Stream.Checkpoints()
	old, ok, err := store.Load(ctx, name)
	if err != nil {
		return ch, fmt.Errorf("load checkpoint of connector %q: %w", name, err)
	}
	if ok {
		ch.Old = &old
	}
	ch.New = core.Checkpoint{Format: core.CheckpointFormat, Connector: name, Position: pos, Time: time.Now().UTC()}
	if err := store.Save(ctx, ch.New); err != nil {
		return ch, fmt.Errorf("save checkpoint of connector %q: %w", name, err)
	}
	c.mu.Lock()
	c.cpPos, c.cpTime = ch.New.Position, ch.New.Time
	c.mu.Unlock()
	return ch, nil
}
