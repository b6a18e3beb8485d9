package rules

import (
	"sync"

	"github.com/tributary/tributary/core"
)

// SinkFuncs returns a sink's compiled when and map as the runtime takes
// them (runtime.Sink's Filter and Map), evaluated for the sink named sink.
// The runtime calls the filter and then the map of each event; the two
// share one EventEnv, so the event's data is decoded once for both. A nil
// when gives a nil filter and a nil data a nil map, which the runtime
// reads as "every event" and "no mapping".
//
// The functions are safe for concurrent use; calls are serialized, as the
// runtime makes them anyway (one loop per sink).
func SinkFuncs(sink string, when *EventProgram, data *EventData) (filter func(*core.Event) (bool, error), mapper func(*core.Event) (any, error)) {
	return (&sharedEnv{sink: sink}).funcs(when, data)
}

// funcs returns the filter and map of SinkFuncs, sharing sh.
func (sh *sharedEnv) funcs(when *EventProgram, data *EventData) (filter func(*core.Event) (bool, error), mapper func(*core.Event) (any, error)) {
	if when != nil {
		filter = func(ev *core.Event) (bool, error) {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			return when.Holds(sh.of(ev))
		}
	}
	if data != nil {
		mapper = func(ev *core.Event) (any, error) {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			return data.EvalEnv(sh.of(ev))
		}
	}
	return filter, mapper
}

// sharedEnv is the EventEnv of the last event a sink's filter or map saw.
type sharedEnv struct {
	sink string
	mu   sync.Mutex
	last *core.Event
	env  EventEnv
}

// of returns the environment of ev, made anew unless ev was the last
// event seen. Called with mu held.
func (s *sharedEnv) of(ev *core.Event) *EventEnv {
	if ev != s.last || ev == nil {
		s.env.Reset(ev, s.sink)
		s.last = ev
	}
	return &s.env
}
