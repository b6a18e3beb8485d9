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

// releaseRoutes makes the routes of the connectors of conns named in
// removed answer 404 from now on, not "retry later".
func (r *Runtime) releaseRoutes(conns []*connector, removed []string) {
	rel, ok := r.opts.HTTP.(interface{ Release(string) })
	if !ok {
		return
	}
	for _, c := range conns {
		in, ok := c.cfg.Source.(core.Ingress)
		if ok && slices.Contains(removed, c.cfg.Name) {
			for _, p := range in.Routes() {
				rel.Release(p)
			}
		}
	}
}

// merged is old without the names in removed, each replaced by the one of
// fresh with its name, in the old order; fresh's new names go at the end.
func merged[T any](old, fresh []T, removed []string, name func(T) string) []T {
	fresh = slices.Clone(fresh)
	var out []T
	for _, o := range old {
		if slices.Contains(removed, name(o)) {
			continue
		}
		if i := slices.IndexFunc(fresh, func(n T) bool { return name(n) == name(o) }); i >= 0 {
			out = append(out, fresh[i])
			fresh = slices.Delete(fresh, i, i+1)
			continue
		}
		out = append(out, o)
	}
	return append(out, fresh...)
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
	r.releaseRoutes(conns, u.RemoveConnectors)

	cl := merged(conns, newConns, u.RemoveConnectors, func(c *connector) string { return c.cfg.Name })
	sl := merged(sinks, newSinks, u.RemoveSinks, func(s *sinkRunner) string { return s.cfg.Name })
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
