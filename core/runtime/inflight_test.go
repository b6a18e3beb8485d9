package runtime_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// boundedSource is a seqSource whose type declares its own max_in_flight.
type boundedSource struct {
	seqSource
	bound int
}

func (s *boundedSource) DefaultMaxInFlight() int { return s.bound }

func (s *boundedSource) read() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next - 1
}

// stalledStream stores what is published but acknowledges nothing until
// release is closed, so every change read stays in flight.
type stalledStream struct {
	*memstream.Stream
	release chan struct{}
	once    sync.Once
}

func (s *stalledStream) Publisher() message.Publisher {
	return &stalledPublisher{Publisher: s.Stream.Publisher(), s: s}
}

func (s *stalledStream) free() { s.once.Do(func() { close(s.release) }) }

type stalledPublisher struct {
	message.Publisher
	s *stalledStream
}

func (p *stalledPublisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	err := p.Publisher.(core.AsyncPublisher).PublishAsync(ctx, topic, msgs, func(err error) {
		go func() {
			<-p.s.release
			done(err)
		}()
	})
	return err
}

func TestSourceDeclaresMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     int // Connector.MaxInFlight
		bound   int // the source's DefaultMaxInFlight
		atLeast int
		atMost  int // changes read while nothing is acknowledged
	}{
		{name: "the source's default", bound: 25, atLeast: 25, atMost: 34},
		{name: "a set value wins", set: 50, bound: 25, atLeast: 50, atMost: 59},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stalledStream{Stream: memstream.New(), release: make(chan struct{})}
			src := &boundedSource{seqSource: seqSource{total: 100000}, bound: tc.bound}
			_, stop := runWith(t, runtime.Options{Stream: st, Connectors: []runtime.Connector{{
				Name: "c", Source: src, Mapper: mapper("c", 0), MaxInFlight: tc.set,
			}}})
			defer stop()
			defer st.free()
			waitFor(t, "reads to reach the bound", func() bool { return src.read() >= tc.atLeast })
			time.Sleep(200 * time.Millisecond) // give an unbounded reader time to run ahead
			if n := src.read(); n > tc.atMost {
				t.Fatalf("read %d changes with none acknowledged, want at most %d", n, tc.atMost)
			}
		})
	}
}
