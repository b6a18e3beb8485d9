package runtime

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// This file declares a sink as the runtime runs it (Sink), checks the
// sinks of Options, and works out the topics a sink reads. sinkstatus.go
// holds a sink's supervisor, state and status; sinkloop.go the delivery
// loop of one session; sinkresult.go what the loop does with the results
// of a Write; sinkdeadletter.go the dead letters of sinks.

// SinkGroupPrefix starts the name of a sink's consumer group: the group is
// SinkGroupPrefix + the sink's name.
const SinkGroupPrefix = "tributary.sink."

// DefaultSinkRetry is the retry schedule of a sink that sets none, in the
// spirit of Standard Webhooks: 5 s, 5 min, 30 min, 2 h, 5 h, then 10 h
// seven times, over 72 hours in all. Read it, do not modify it.
var DefaultSinkRetry = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Sink defaults.
const (
	defaultSinkConcurrency = 16
	defaultSinkMaxBatch    = 64
	// sinkWindow is how many messages of a partition a sink's
	// subscription may hold unacked (core.SubscribeOptions.Window): enough
	// for every Write at once of a busy sink, few enough to bound memory.
	sinkWindow = 512
)

// Sink is one configured sink instance: where events of the stream are
// delivered, which of them, and how.
type Sink struct {
	Name string
	Type string
	// Sink is configured (Configure succeeded) and not yet opened.
	Sink core.Sink
	// Types are event type globs (path.Match syntax on the type, such as
	// "com.acme.order.*"); an event is delivered when its type matches
	// one of them. Empty means every type.
	Types []string
	// Filter, when set, says whether an event is delivered: false skips
	// it (it is committed, not delivered), an error dead-letters it.
	Filter func(*core.Event) (bool, error)
	// Map, when set, builds core.Delivery.Data from the event; an error
	// dead-letters the event. Without it Data stays nil.
	Map func(*core.Event) (any, error)
	// Retry is the schedule of waits before each new attempt of an event
	// the target asked to retry; after the last one the event is
	// dead-lettered. nil means DefaultSinkRetry; an empty, non-nil
	// schedule dead-letters an event at its first failure.
	Retry []time.Duration
	// Concurrency is the most Write calls at once. Default 16, or the
	// sink's own (core.BatchingSink).
	Concurrency int
	// MaxBatch is the most deliveries in one Write. Default 64, or the
	// sink's own (core.BatchingSink).
	MaxBatch int
	// From is where the sink's consumer group starts when it has no
	// committed offsets. The configuration's default, `start:
	// beginning`, sets core.FromBeginning; mind that the zero value of
	// core.StartFrom is core.FromEnd, and is kept as such.
	From core.StartFrom
	// Disabled sinks are listed in status but never started.
	Disabled bool
}

// ErrNoSink is returned by PauseSink and ResumeSink for a name no sink has.
var ErrNoSink = errors.New("no such sink")

// checkSinks checks the sinks of opts and fills in their defaults.
func checkSinks(opts Options) ([]Sink, error) {
	var out []Sink
	seen := map[string]bool{}
	for _, s := range opts.Sinks {
		if s.Name == "" || s.Sink == nil {
			return nil, fmt.Errorf("runtime: sink %q: name and sink are required", s.Name)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("runtime: sink %q defined twice", s.Name)
		}
		seen[s.Name] = true
		for _, g := range s.Types {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("runtime: sink %q: event type glob %q: %w", s.Name, g, err)
			}
		}
		if s.Retry == nil {
			s.Retry = slices.Clone(DefaultSinkRetry)
		}
		for i, d := range s.Retry {
			if d <= 0 {
				return nil, fmt.Errorf("runtime: sink %q: retry schedule entry %d is %s; every wait must be positive", s.Name, i, d)
			}
		}
		if b, ok := s.Sink.(core.BatchingSink); ok && (s.Concurrency <= 0 || s.MaxBatch <= 0) {
			batch, conc := b.WriteDefaults()
			if s.MaxBatch <= 0 {
				s.MaxBatch = batch
			}
			if s.Concurrency <= 0 {
				s.Concurrency = conc
			}
		}
		if s.Concurrency <= 0 {
			s.Concurrency = defaultSinkConcurrency
		}
		if s.MaxBatch <= 0 {
			s.MaxBatch = defaultSinkMaxBatch
		}
		out = append(out, s)
	}
	return out, nil
}

// matchesType reports whether an event of type t is for the sink.
func (s *Sink) matchesType(t string) bool {
	if len(s.Types) == 0 {
		return true
	}
	for _, g := range s.Types {
		if ok, _ := path.Match(g, t); ok {
			return true
		}
	}
	return false
}

// sinkTopics returns the topics the sink reads: in single mode the one
// topic; per type, the topic of every known event type its globs match,
// and of every glob that names one type exactly.
func sinkTopics(t Topics, known []string, s *Sink) ([]string, error) {
	if t.Mode == "single" {
		return []string{t.Name}, nil
	}
	var types []string
	for _, k := range known {
		if s.matchesType(k) {
			types = append(types, k)
		}
	}
	for _, g := range s.Types {
		if !strings.ContainsAny(g, `*?[\`) {
			types = append(types, g)
		}
	}
	slices.Sort(types)
	types = slices.Compact(types)
	if len(types) == 0 {
		if len(s.Types) == 0 {
			return nil, errors.New("no event type is known to read topics for (topics are per type and the catalog lists none); list the types in the catalog, name them in the sink's events, or put every event on one topic")
		}
		return nil, fmt.Errorf("no known event type matches events %q (topics are per type); list the types in the catalog or name them exactly in the sink's events", s.Types)
	}
	out := make([]string, len(types))
	for i, ty := range types {
		out[i] = t.For(ty)
	}
	return out, nil
}

// SinkStateDir is the state directory a sink named name gets below the
// sidecar's state directory base ("" when base is ""): its retry store,
// and its own files such as the audit log.
func SinkStateDir(base, name string) string {
	if base == "" {
		return ""
	}
	return filepath.Join(base, "sinks", name)
}
