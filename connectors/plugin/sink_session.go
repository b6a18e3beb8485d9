package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// sinkSession is one sink plugin process from start to stop: the reader
// of its messages, which hands each write's results to the Write waiting
// for them, the credits that bound the deliveries in flight, and the
// watchdog that kills the process when it falls silent.
type sinkSession struct {
	link

	mu      sync.Mutex
	free    int                          // credits not in flight
	freed   chan struct{}                // closed when credits come back
	nextID  int                          // id of the next write
	pending map[int]chan []plugin.Result // writes waiting for results
	sizes   map[int]int                  // deliveries of each write in flight
}

func newSinkSession(name string, proc process, log *slog.Logger, credits int, timeout time.Duration) *sinkSession {
	s := &sinkSession{free: credits, freed: make(chan struct{}), pending: map[int]chan []plugin.Result{}, sizes: map[int]int{}}
	s.init("sink plugin", "its deliveries in flight are retried and it is started again", name, proc, log, timeout, 1)
	s.wg.Go(s.readLoop)
	s.wg.Go(s.watchdog)
	return s
}

func (s *sinkSession) readLoop() {
	for {
		m, ok := s.recv()
		if !ok {
			return
		}
		switch m.Type {
		case plugin.TypeResults:
			s.mu.Lock()
			ch, ok := s.pending[m.N]
			n := s.sizes[m.N]
			delete(s.pending, m.N)
			delete(s.sizes, m.N)
			s.mu.Unlock()
			if !ok {
				s.fail(core.Fatal(fmt.Errorf("sink plugin %q answered write %d, which is not in flight", s.name, m.N)))
				s.proc.Kill()
				return
			}
			if len(m.Results) != n {
				s.fail(core.Fatal(fmt.Errorf("sink plugin %q answered write %d with %d results for %d deliveries: the protocol asks for one result per delivery", s.name, m.N, len(m.Results), n)))
				s.proc.Kill()
				return
			}
			s.release(n)
			if ch != nil {
				ch <- m.Results // buffered: never blocks
			}
		case plugin.TypeError:
			err := fmt.Errorf("sink plugin %q: %s", s.name, m.Error)
			if m.Fatal {
				err = core.Fatal(err)
			}
			s.fail(err)
		case plugin.TypeHello, plugin.TypeConfigured, plugin.TypeOpened, plugin.TypeTarget, plugin.TypeClosed:
			select {
			case s.replies <- m:
			default:
				s.fail(fmt.Errorf("sink plugin %q sent an unrequested %s", s.name, m.Type))
			}
		}
		// heartbeat, and types of later protocol versions, only prove life.
	}
}

// acquire takes n credits, waiting until the plugin has answered enough
// writes.
func (s *sinkSession) acquire(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		if s.free >= n {
			s.free -= n
			s.mu.Unlock()
			return nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-s.done:
			return s.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *sinkSession) release(n int) {
	s.mu.Lock()
	s.free += n
	close(s.freed)
	s.freed = make(chan struct{})
	s.mu.Unlock()
}

// write sends ds (at most credits of them) as one write and waits for its
// results. When ctx ends first it asks the plugin to cancel the write and
// returns every result a retry; the credits come back when the plugin
// answers.
func (s *sinkSession) write(ctx context.Context, ds []core.Delivery) ([]core.Result, error) {
	wire, err := plugin.ToWireDeliveries(ds)
	if err != nil {
		// An event that cannot be encoded is the runtime's, never the
		// target's fault: refuse the call's events with the reason.
		out := make([]core.Result, len(ds))
		for i := range out {
			out[i] = core.Result{Status: core.StatusFailed, Err: err}
		}
		return out, nil
	}
	if err := s.acquire(ctx, len(ds)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// Nothing is sent once ctx is done, so that nothing is
		// delivered that is not reported.
		s.release(len(ds))
		return nil, fmt.Errorf("sink plugin %q: write not sent: %w", s.name, err)
	}
	ch := make(chan []plugin.Result, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id], s.sizes[id] = ch, len(ds)
	s.mu.Unlock()
	if err := s.send(&plugin.Message{Type: plugin.TypeWrite, N: id, Deliveries: wire}); err != nil {
		s.fail(err)
		return nil, err
	}
	select {
	case rs := <-ch:
		out, err := plugin.FromWireResults(rs)
		if err != nil {
			err = core.Fatal(fmt.Errorf("sink plugin %q: %w", s.name, err))
			s.fail(err)
			return nil, err
		}
		return out, nil
	case <-s.done:
		return nil, s.err
	case <-ctx.Done():
		s.mu.Lock()
		if _, ok := s.pending[id]; ok {
			s.pending[id] = nil // its results only return the credits
		}
		s.mu.Unlock()
		_ = s.send(&plugin.Message{Type: plugin.TypeCancel, N: id})
		return nil, fmt.Errorf("sink plugin %q: write cancelled before the plugin answered: %w", s.name, ctx.Err())
	}
}

// close asks the plugin to close its sink, waits for the answer within
// ctx, and stops the process. It is called once.
func (s *sinkSession) close(ctx context.Context) error {
	return s.link.close(ctx, nil)
}
