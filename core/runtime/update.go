package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/tributary/tributary/core"
)

// This file changes the running set of connectors and sinks without
// restarting the runtime: a configuration reload stops the ones whose
// configuration changed and starts their new versions, and leaves the
// others running.

// Update is a change to the running connectors and sinks, by name.
type Update struct {
	// Connectors are started; a connector of the same name is stopped
	// first (its session drains and commits, as on shutdown) and
	// replaced, at its place in the status.
	Connectors []Connector
	// RemoveConnectors are stopped and removed.
	RemoveConnectors []string
	// Sinks are started; a sink of the same name is stopped first and
	// replaced. Its consumer group, and so its committed offsets, is
	// named after it: a replaced sink goes on where the old one stopped.
	Sinks []Sink
	// RemoveSinks are stopped and removed.
	RemoveSinks []string
	// EventTypes, when not nil, replaces Options.EventTypes (the
	// catalog's types) for the sinks this update and later ones start: a
	// sink reading topics per type reads those of the new types its
	// globs match. Sinks left running keep their topics.
	EventTypes []string
}

// ErrNotRunning is returned by Apply while Run is not running (not
// called yet, the stream not open yet, or Run returned).
var ErrNotRunning = errors.New("the runtime is not running")

type updateCall struct {
	u    Update
	done chan error
}

// Apply stops, replaces and starts connectors and sinks as u says, and
// returns once every one stopped has stopped and every new one is
// started (not necessarily open). It checks u whole first, and changes
// nothing when it is wrong (an unknown name to remove, a connector
// without a source). The connectors and sinks u does not name keep
// running, with their counters. Apply is safe to call concurrently with
// everything but blocks while another Apply runs; ctx bounds the wait for
// Run to take the update, not the drains (bounded by
// Options.DrainTimeout).
func (r *Runtime) Apply(ctx context.Context, u Update) error {
	call := updateCall{u: u, done: make(chan error, 1)}
	select {
	case r.updates <- call:
	case <-r.loopDone:
		return fmt.Errorf("apply update: %w", ErrNotRunning)
	case <-ctx.Done():
		return fmt.Errorf("apply update: %w (%w)", ErrNotRunning, ctx.Err())
	}
	return <-call.done
}

// updateLoop serves Apply until ctx is done.
func (r *Runtime) updateLoop(ctx context.Context, wg *sync.WaitGroup) {
	defer close(r.loopDone)
	for {
		select {
		case <-ctx.Done():
			return
		case call := <-r.updates:
			call.done <- r.apply(ctx, wg, call.u)
		}
	}
}

// startConnector runs c's supervise on wg until ctx is done or c.stop.
func (r *Runtime) startConnector(ctx context.Context, wg *sync.WaitGroup, c *connector) {
	if c.cfg.Disabled {
		c.setState(StateDisabled, nil)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	c.stop, c.exited = cancel, make(chan struct{})
	wg.Go(func() {
		defer close(c.exited)
		c.supervise(cctx)
	})
}

// startSink runs s's supervise on wg until ctx is done or s.stop.
func (r *Runtime) startSink(ctx context.Context, wg *sync.WaitGroup, s *sinkRunner) {
	if s.cfg.Disabled {
		s.setState(StateDisabled, nil)
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	s.stop, s.exited = cancel, make(chan struct{})
	wg.Go(func() {
		defer close(s.exited)
		s.supervise(sctx)
	})
}

// apply checks u, stops what it replaces or removes, waits until those
// have stopped, then swaps the lists and starts the new ones.
func (r *Runtime) apply(ctx context.Context, wg *sync.WaitGroup, u Update) error {
	conns, sinks := r.connectorList(), r.sinkList()
	var newConns []*connector
	names := map[string]bool{}
	for _, cfg := range u.Connectors {
		cfg, err := prepareConnector(cfg)
		if err != nil {
			return err
		}
		if names[cfg.Name] {
			return fmt.Errorf("runtime: connector %q is in the update twice", cfg.Name)
		}
		names[cfg.Name] = true
		newConns = append(newConns, newConnector(r, cfg))
	}
	for _, name := range u.RemoveConnectors {
		if !slices.ContainsFunc(conns, func(c *connector) bool { return c.cfg.Name == name }) {
			return fmt.Errorf("runtime: remove connector: %w named %q", ErrNoConnector, name)
		}
		if names[name] {
			return fmt.Errorf("runtime: connector %q is both removed and started", name)
		}
	}
	checked, err := checkSinks(Options{Sinks: u.Sinks})
	if err != nil {
		return err
	}
	for _, name := range u.RemoveSinks {
		if !slices.ContainsFunc(sinks, func(s *sinkRunner) bool { return s.cfg.Name == name }) {
			return fmt.Errorf("runtime: remove sink: %w named %q", ErrNoSink, name)
		}
		if slices.ContainsFunc(checked, func(s Sink) bool { return s.Name == name }) {
			return fmt.Errorf("runtime: sink %q is both removed and started", name)
		}
	}
	r.mu.Lock()
	if len(checked) > 0 && r.sinkM == nil {
		r.sinkM = newSinkMetrics(r.opts.Registerer)
	}
	if u.EventTypes != nil {
		r.opts.EventTypes = slices.Clone(u.EventTypes)
	}
	r.mu.Unlock()
	var newSinks []*sinkRunner
	for _, cfg := range checked {
		newSinks = append(newSinks, newSinkRunner(r, cfg))
	}

	// Stop what goes, all at once, and wait.
	var stopping []chan struct{}
	goes := func(name string, replaced func(string) bool, removed []string) bool {
		return replaced(name) || slices.Contains(removed, name)
	}
	connReplaced := func(n string) bool { return names[n] }
	sinkReplaced := func(n string) bool {
		return slices.ContainsFunc(checked, func(s Sink) bool { return s.Name == n })
	}
	for _, c := range conns {
		if goes(c.cfg.Name, connReplaced, u.RemoveConnectors) && c.stop != nil {
			c.stop()
			stopping = append(stopping, c.exited)
		}
	}
	for _, s := range sinks {
		if goes(s.cfg.Name, sinkReplaced, u.RemoveSinks) && s.stop != nil {
			s.stop()
			stopping = append(stopping, s.exited)
		}
	}
	for _, ch := range stopping {
		<-ch
	}
	// A removed connector's routes answer 404 from now on, not "retry
	// later".
	if rel, ok := r.opts.HTTP.(interface{ Release(string) }); ok {
		for _, c := range conns {
			in, ok := c.cfg.Source.(core.Ingress)
			if ok && slices.Contains(u.RemoveConnectors, c.cfg.Name) {
				for _, p := range in.Routes() {
					rel.Release(p)
				}
			}
		}
	}

	// The new lists keep the old order; new names go at the end.
	var cl []*connector
	for _, c := range conns {
		switch {
		case slices.Contains(u.RemoveConnectors, c.cfg.Name):
		case names[c.cfg.Name]:
			i := slices.IndexFunc(newConns, func(n *connector) bool { return n.cfg.Name == c.cfg.Name })
			cl = append(cl, newConns[i])
			newConns = slices.Delete(newConns, i, i+1)
		default:
			cl = append(cl, c)
		}
	}
	cl = append(cl, newConns...)
	var sl []*sinkRunner
	for _, s := range sinks {
		switch {
		case slices.Contains(u.RemoveSinks, s.cfg.Name):
		case sinkReplaced(s.cfg.Name):
			i := slices.IndexFunc(newSinks, func(n *sinkRunner) bool { return n.cfg.Name == s.cfg.Name })
			sl = append(sl, newSinks[i])
			newSinks = slices.Delete(newSinks, i, i+1)
		default:
			sl = append(sl, s)
		}
	}
	sl = append(sl, newSinks...)
	r.mu.Lock()
	r.connectors, r.sinks = cl, sl
	r.mu.Unlock()

	for _, c := range cl {
		if names[c.cfg.Name] {
			r.startConnector(ctx, wg, c)
		}
	}
	for _, s := range sl {
		if sinkReplaced(s.cfg.Name) {
			r.startSink(ctx, wg, s)
		}
	}
	return nil
}
