package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// This file is a sink's replay: the events an operator chooses, delivered
// again to one sink through its own types, filter, map, retries and
// per-key order, with core.Delivery.Replay set, without touching the
// sink's consumer group. A replay runs a delivery loop of its own
// (sinkloop.go) beside the sink's, fed by replayscan.go from the stream
// and, for what the stream no longer holds, from an archive (the audit
// log).

// ReplayFilter chooses the events a replay delivers again. Its zero value
// chooses every event the stream (and the archive) holds.
type ReplayFilter struct {
	// Since keeps events whose time is at or after it.
	Since time.Time `json:"since,omitzero"`
	// Until keeps events whose time is before it.
	Until time.Time `json:"until,omitzero"`
	// Types keeps events of any of these types (exact names); empty
	// keeps every type.
	Types []string `json:"types,omitempty"`
	// Subject keeps events with exactly this subject.
	Subject string `json:"subject,omitempty"`
	// DryRun delivers nothing: the replay only counts (and lists, with
	// ReplayOptions.List) the events it would deliver.
	DryRun bool `json:"dry_run,omitempty"`
}

// check reports a filter no event can match.
func (f ReplayFilter) check() error {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("replay: until %s is not after since %s: no event can match", f.Until.Format(time.RFC3339Nano), f.Since.Format(time.RFC3339Nano))
	}
	return nil
}

// matches reports whether f keeps ev. A time bound leaves out events with
// no time, as the audit log's search does.
func (f ReplayFilter) matches(ev *core.Event) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, ev.Type) {
		return false
	}
	if f.Subject != "" && ev.Subject != f.Subject {
		return false
	}
	if !f.Since.IsZero() && (ev.Time.IsZero() || ev.Time.Before(f.Since)) {
		return false
	}
	if !f.Until.IsZero() && (ev.Time.IsZero() || !ev.Time.Before(f.Until)) {
		return false
	}
	return true
}

// ReplayArchive is where a replay finds the events the stream no longer
// holds: the audit log. The runtime knows no archive itself; the caller
// (the CLI) passes the one the configuration has.
type ReplayArchive interface {
	// Events calls fn with each archived event f selects (f.DryRun does
	// not matter), in time order, and stops at fn's first error, which
	// it returns. It returns promptly once ctx is done.
	Events(ctx context.Context, f ReplayFilter, fn func(*core.Event) error) error
	// Holds reports whether the archive holds the event with id. A replay
	// asks it of the stream's events that fall in the time range it read
	// from the archive, so that an event both hold goes once without the
	// replay keeping the ids it read.
	Holds(ctx context.Context, id string) (bool, error)
}

// ReplayOptions are the parts of a replay besides its filter.
type ReplayOptions struct {
	// Archive, when set, supplies the events the stream no longer holds:
	// those of the filter's time range before the oldest event the
	// stream still has.
	Archive ReplayArchive
	// List, when set, is called on a dry run with each event that would
	// be delivered, in the order it would be, and whether it comes from
	// the archive.
	List func(ev *core.Event, fromArchive bool)
}

// ReplayReport is what a replay did, or (a dry run) would do.
type ReplayReport struct {
	Sink   string       `json:"sink"`
	Filter ReplayFilter `json:"filter"`
	// Matched counts the events the filter chose, from the stream and
	// the archive.
	Matched int64 `json:"matched"`
	// FromArchive counts those of Matched that came from the archive.
	FromArchive int64 `json:"from_archive"`
	// Skipped counts those the sink's own events and when leave out.
	Skipped int64 `json:"skipped"`
	// DeadLettered counts those sent to the dead-letter topic (a dry run:
	// those whose when or map fails, which a replay would dead-letter).
	DeadLettered int64 `json:"dead_lettered"`
	// Count is how many events were delivered again (a dry run: would
	// be).
	Count int64 `json:"count"`
}

// ErrSinkNotRunning is returned by ReplaySink, in a running sidecar, for a
// sink that is not delivering (paused, failed, starting or retrying): its
// replay would wait for it.
var ErrSinkNotRunning = errors.New("sink is not running")

// replayWindow is the most events of a replay delivered or being
// delivered at once: the replay reads the stream no further ahead.
const replayWindow = 512

// ReplaySink delivers again the events of the named sink's topics that f
// chooses, through the sink's own types, filter, map, retry schedule and
// per-key order, each with core.Delivery.Replay set. It reads the stream
// without a consumer group, from f.Since, up to what the stream holds when
// it starts, and takes from o.Archive the events of f's time range that
// are older than the oldest the stream still has (once each: an event
// both hold goes from the archive only). The sink's consumer group and
// its committed offsets are not touched. An event the target refuses, or
// that uses up the retry schedule, is dead-lettered as a normal delivery
// would be.
//
// ReplaySink returns once every chosen event is delivered, skipped or
// dead-lettered, or once ctx is done (with what was done by then and
// ctx's error). In a running runtime (after Run), the sink must be
// running: the replay's Writes go to the sink the runtime has open,
// beside its own deliveries, and the replay ends when the runtime shuts
// down. In a runtime that does not run, ReplaySink opens the stream and
// the sink itself and closes them before it returns. A dry run (f.DryRun)
// opens no sink and delivers nothing: it counts, and lists to o.List, the
// events it would deliver.
//
// It returns an error wrapping ErrNoSink for an unknown name, and, in a
// running runtime, one wrapping ErrSinkNotRunning for a sink that is not
// delivering.
func (r *Runtime) ReplaySink(ctx context.Context, name string, f ReplayFilter, o ReplayOptions) (ReplayReport, error) {
	rep := ReplayReport{Sink: name, Filter: f}
	s, err := r.sink(name)
	if err != nil {
		return rep, err
	}
	if s.topicsErr != nil {
		return rep, s.topicsErr
	}
	if err := f.check(); err != nil {
		return rep, err
	}
	r.mu.Lock()
	running := r.started
	r.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if running {
		if st := s.status().State; !f.DryRun && st != StateRunning && st != StateCircuitOpen {
			return rep, fmt.Errorf("replay to sink %q: the sink is %s, %w; resume it or wait until it runs", name, st, ErrSinkNotRunning)
		}
		stop := r.stopOnShutdown(cancel)
		defer stop()
	} else {
		closeStream, err := r.openReplayStream(ctx)
		if err != nil {
			return rep, err
		}
		defer closeStream()
		if !f.DryRun {
			closeSink, err := r.openReplaySink(ctx, s)
			if err != nil {
				return rep, err
			}
			defer closeSink()
		}
	}
	if f.DryRun {
		return r.dryRun(ctx, s, f, o)
	}
	return r.replay(ctx, s, f, o)
}

// stopOnShutdown calls cancel once the runtime begins to shut down, so
// that a replay drains within the shutdown deadline; the returned function
// stops watching.
func (r *Runtime) stopOnShutdown(cancel context.CancelFunc) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			r.mu.Lock()
			shutting := r.shutdownCtx != nil
			r.mu.Unlock()
			if shutting {
				cancel()
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// openReplayStream opens the stream of a runtime that does not run, once;
// the returned function closes it.
func (r *Runtime) openReplayStream(ctx context.Context) (func(), error) {
	if r.opts.StateDir != "" {
		if err := os.MkdirAll(r.opts.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("create state directory %s: %w", r.opts.StateDir, err)
		}
	}
	env := core.Env{Name: "stream", Logger: r.log.With("component", "stream"), StateDir: r.opts.StateDir}
	if err := r.opts.Stream.Open(ctx, env); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), r.opts.ShutdownTimeout)
		defer cancel()
		_ = r.opts.Stream.Close(cctx)
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return func() {
		cctx, cancel := context.WithTimeout(context.Background(), r.opts.ShutdownTimeout)
		defer cancel()
		if err := r.opts.Stream.Close(cctx); err != nil {
			r.log.Warn("close stream", "err", err)
		}
	}, nil
}

// openReplaySink opens the sink of a runtime that does not run, as a
// session would, once; the returned function closes it.
func (r *Runtime) openReplaySink(ctx context.Context, s *sinkRunner) (func(), error) {
	env := core.Env{Name: s.cfg.Name, Logger: s.log, StateDir: SinkStateDir(r.opts.StateDir, s.cfg.Name)}
	if env.StateDir != "" {
		if err := os.MkdirAll(env.StateDir, 0o755); err != nil {
			return nil, fmt.Errorf("create state directory %s: %w", env.StateDir, err)
		}
	}
	closeSink := func() {
		cctx, cancel := r.drainContext()
		defer cancel()
		if err := s.cfg.Sink.Close(cctx); err != nil {
			s.log.Warn("close sink", "err", err)
		}
	}
	if err := s.cfg.Sink.Open(ctx, env); err != nil {
		closeSink()
		return nil, fmt.Errorf("open sink %q: %w", s.cfg.Name, err)
	}
	return closeSink, nil
}

// dryRun counts and lists what a replay would deliver: the events f
// chooses that the sink's types and filter keep and its map maps.
func (r *Runtime) dryRun(ctx context.Context, s *sinkRunner, f ReplayFilter, o ReplayOptions) (ReplayReport, error) {
	rep := ReplayReport{Sink: s.cfg.Name, Filter: f}
	err := r.scanReplay(ctx, s, f, o.Archive, func(_ *message.Message, ev *core.Event, archived bool) error {
		rep.Matched++
		if archived {
			rep.FromArchive++
		}
		if !s.cfg.matchesType(ev.Type) {
			rep.Skipped++
			return nil
		}
		if fl := s.cfg.Filter; fl != nil {
			ok, err := fl(ev)
			switch {
			case err != nil:
				rep.DeadLettered++
				return nil
			case !ok:
				rep.Skipped++
				return nil
			}
		}
		if mp := s.cfg.Map; mp != nil {
			if _, err := mp(ev); err != nil {
				rep.DeadLettered++
				return nil
			}
		}
		rep.Count++
		if o.List != nil {
			o.List(ev, archived)
		}
		return nil
	})
	return rep, err
}

// errReplayEnded stops the scan of a replay whose delivery loop ended.
var errReplayEnded = errors.New("the replay's delivery loop ended")

// replay feeds the events f chooses to a delivery loop of their own and
// waits until each is acked: delivered, skipped or dead-lettered.
func (r *Runtime) replay(ctx context.Context, s *sinkRunner, f ReplayFilter, o ReplayOptions) (ReplayReport, error) {
	rep := ReplayReport{Sink: s.cfg.Name, Filter: f}
	rs := r.replayRunner(s)
	l := newSinkLoop(rs)
	lctx, stopLoop := context.WithCancel(context.Background())
	defer stopLoop()
	loopErr := make(chan error, 1)
	go func() { loopErr <- l.run(lctx) }()

	window := make(chan struct{}, replayWindow)
	var acks sync.WaitGroup
	var acked atomic.Int64
	scanErr := r.scanReplay(ctx, s, f, o.Archive, func(m *message.Message, _ *core.Event, archived bool) error {
		select {
		case window <- struct{}{}:
		case <-l.done:
			return errReplayEnded
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case l.intake <- []*message.Message{m}:
		case <-l.stopIntake:
			<-window
			return errReplayEnded
		case <-ctx.Done():
			<-window
			return ctx.Err()
		}
		rep.Matched++
		if archived {
			rep.FromArchive++
		}
		acks.Go(func() {
			select {
			case <-m.Acked():
				acked.Add(1)
			case <-l.done:
			}
			<-window
		})
		return nil
	})
	if scanErr == nil {
		// Every event is handed over: wait until each is done.
		wait := make(chan struct{})
		go func() { acks.Wait(); close(wait) }()
		select {
		case <-wait:
		case <-l.done:
		case <-ctx.Done():
		}
	}
	stopLoop()
	err := <-loopErr
	acks.Wait()
	rep.Count = int64(rs.delivered.Load())
	rep.Skipped = int64(rs.skipped.Load())
	rep.DeadLettered = int64(rs.deadLettered.Load())
	switch {
	case err != nil:
		err = fmt.Errorf("replay to sink %q: %w", s.cfg.Name, err)
	case scanErr != nil && !errors.Is(scanErr, errReplayEnded):
		err = scanErr
	case ctx.Err() != nil:
		err = fmt.Errorf("replay to sink %q stopped with %d of %d events done: %w", s.cfg.Name, acked.Load(), rep.Matched, ctx.Err())
	}
	if err == nil {
		s.log.Info("replay done", "matched", rep.Matched, "from_archive", rep.FromArchive, "delivered", rep.Count, "skipped", rep.Skipped, "dead_lettered", rep.DeadLettered)
	}
	return rep, err
}

// replayRunner returns a runner for a replay to s: s's configuration,
// with Writes marked as replays, and state, counters and metrics of its
// own, so that the replay changes nothing the sink shows.
func (r *Runtime) replayRunner(s *sinkRunner) *sinkRunner {
	cfg := s.cfg
	cfg.Sink = replayWrites{cfg.Sink}
	return &sinkRunner{
		r:       r,
		cfg:     cfg,
		log:     s.log.With("replay", true),
		topics:  s.topics,
		tuning:  s.tuning,
		m:       newSinkMetrics(nil).series(cfg.Name),
		state:   StateRunning,
		since:   time.Now(),
		circuit: CircuitClosed,
		wake:    make(chan struct{}, 1),
		restart: make(chan struct{}, 1),
	}
}

// replayWrites is a sink whose Writes are replays.
type replayWrites struct{ core.Sink }

// Write marks each delivery as a replay and writes them.
func (w replayWrites) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	for i := range ds {
		ds[i].Replay = true
	}
	return w.Sink.Write(ctx, ds)
}

// WriteReporting marks each delivery as a replay and writes them,
// reporting results early when the sink does.
func (w replayWrites) WriteReporting(ctx context.Context, ds []core.Delivery, report func(int, core.Result)) []core.Result {
	rs, ok := w.Sink.(core.ReportingSink)
	if !ok {
		return w.Write(ctx, ds)
	}
	for i := range ds {
		ds[i].Replay = true
	}
	return rs.WriteReporting(ctx, ds, report)
}

var _ core.ReportingSink = replayWrites{}
