package runtime_test

import (
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// windowStream records the window each subscription asks for.
type windowStream struct {
	*memstream.Stream
	mu      sync.Mutex
	windows map[string]int
}

func (s *windowStream) Subscriber(opts core.SubscribeOptions) (message.Subscriber, error) {
	s.mu.Lock()
	s.windows[opts.Group] = opts.Window
	s.mu.Unlock()
	return s.Stream.Subscriber(opts)
}

func (s *windowStream) window(group string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.windows[group]
	return w, ok
}

// windowedSink asks for a window of its own.
type windowedSink struct {
	recSink
	window int
}

func (s *windowedSink) StreamWindow() int { return s.window }

func TestSinkStreamWindow(t *testing.T) {
	st := &windowStream{Stream: memstream.New(), windows: map[string]int{}}
	_, stop := runWith(t, runtime.Options{Stream: st, EventTypes: []string{"test.created"}, Sinks: []runtime.Sink{
		{Name: "plain", Sink: &recSink{}, From: core.FromBeginning},
		{Name: "wide", Sink: &windowedSink{window: 2048}, From: core.FromBeginning},
		{Name: "narrow", Sink: &windowedSink{window: 8}, From: core.FromBeginning},
	}})
	defer stop()
	for _, tc := range []struct {
		sink string
		want int
	}{
		{sink: "plain", want: 512},
		{sink: "wide", want: 2048},
		{sink: "narrow", want: 512}, // below the default: ignored
	} {
		group := runtime.SinkGroupPrefix + tc.sink
		waitFor(t, "sink "+tc.sink+" to subscribe", func() bool { _, ok := st.window(group); return ok })
		if w, _ := st.window(group); w != tc.want {
			t.Errorf("sink %s subscribed with window %d, want %d", tc.sink, w, tc.want)
		}
	}
}
