package conformance_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// logSystem is a tiny system with an append-only log, standing in for a
// database with a change log.
type logSystem struct {
	mu      sync.Mutex
	entries []string
	notify  chan struct{}
}

func (l *logSystem) append(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		l.entries = append(l.entries, "entry-"+strconv.Itoa(len(l.entries)+1))
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// logSource reads logSystem from a position: the index of the next entry.
type logSource struct {
	sys  *logSystem
	next int
	done chan struct{}
	once sync.Once
}

func (s *logSource) Configure(core.Config) error { return nil }

func (s *logSource) Open(_ context.Context, _ core.Env, from core.Position) error {
	s.done = make(chan struct{})
	if !from.IsZero() {
		n, err := strconv.Atoi(string(from.Data))
		if err != nil {
			return core.Fatal(err)
		}
		s.next = n
	}
	return nil
}

func (s *logSource) Read(ctx context.Context) ([]core.Change, error) {
	for {
		s.sys.mu.Lock()
		entries, notify := s.sys.entries, s.sys.notify
		s.sys.mu.Unlock()
		if s.next < len(entries) {
			var out []core.Change
			for ; s.next < len(entries); s.next++ {
				out = append(out, core.Change{
					Op:       core.OpCreate,
					After:    map[string]any{"value": entries[s.next]},
					Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(s.next + 1))},
				})
			}
			return out, nil
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, context.Canceled
		}
	}
}

func (s *logSource) Ack(context.Context, core.Position) error { return nil }

func (s *logSource) Close(context.Context) error {
	if s.done != nil {
		s.once.Do(func() { close(s.done) })
	}
	return nil
}

func TestKitOnReferenceSource(t *testing.T) {
	sys := &logSystem{notify: make(chan struct{})}
	conformance.Run(t, conformance.Harness{
		New:          func(testing.TB) core.Source { return &logSource{sys: sys} },
		Produce:      func(_ testing.TB, n int) { sys.append(n) },
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
