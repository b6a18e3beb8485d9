package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// session is one plugin process from start to stop: the reader of its
// messages, the writer of credits and acks, and the watchdog that kills it
// when it falls silent.
type session struct {
	link

	// in holds received batches; its capacity is the credit window, which
	// no batch can overrun since each holds at least one change.
	in chan []core.Change
	// window is how many changes the plugin may still send.
	window   atomic.Int64
	buffered atomic.Int64

	// out coalesces credits and the latest ack for the writer.
	outMu      sync.Mutex
	outCredits int
	outAck     *core.Position
	kick       chan struct{}
}

func newSession(name string, proc process, log *slog.Logger, credits int, timeout time.Duration) *session {
	s := &session{in: make(chan []core.Change, credits), kick: make(chan struct{}, 1)}
	s.init("plugin", "it is restarted from the last committed position", name, proc, log, timeout, 4)
	s.window.Store(int64(credits))
	s.wg.Go(s.readLoop)
	s.wg.Go(s.writeLoop)
	s.wg.Go(s.watchdog)
	return s
}

func (s *session) readLoop() {
	for {
		m, ok := s.recv()
		if !ok {
			return
		}
		switch m.Type {
		case plugin.TypeChanges:
			n := int64(len(m.Changes))
			if n == 0 {
				continue
			}
			if s.window.Add(-n) < 0 {
				s.fail(core.Fatal(fmt.Errorf("plugin %q broke flow control: it sent %d changes beyond its credits (the protocol lets it send only as many changes as it holds credits)", s.name, -s.window.Load())))
				s.proc.Kill()
				return
			}
			s.buffered.Add(n)
			s.in <- plugin.FromWire(m.Changes)
		case plugin.TypeError:
			err := fmt.Errorf("plugin %q: %s", s.name, m.Error)
			if m.Fatal {
				err = core.Fatal(err)
			}
			s.fail(err)
		case plugin.TypeHello, plugin.TypeConfigured, plugin.TypeOpened, plugin.TypeProduced, plugin.TypeClosed:
			select {
			case s.replies <- m:
			default:
				s.fail(fmt.Errorf("plugin %q sent an unrequested %s", s.name, m.Type))
			}
		}
		// heartbeat, and types of later protocol versions, only prove life.
	}
}

// writeLoop sends credits and acks as they accumulate, so that neither
// Read nor Ack waits on the plugin.
func (s *session) writeLoop() {
	for {
		select {
		case <-s.kick:
		case <-s.stop:
			return
		case <-s.done:
			return
		}
		s.outMu.Lock()
		credits, ack := s.outCredits, s.outAck
		s.outCredits, s.outAck = 0, nil
		s.outMu.Unlock()
		if credits > 0 {
			if err := s.send(&plugin.Message{Type: plugin.TypeCredit, N: credits}); err != nil {
				s.fail(err)
				return
			}
		}
		if ack != nil {
			if err := s.send(&plugin.Message{Type: plugin.TypeAck, Position: ack}); err != nil {
				s.fail(err)
				return
			}
		}
	}
}

func (s *session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// read returns the next batch, returning its credits to the plugin.
func (s *session) read(ctx context.Context) ([]core.Change, error) {
	select {
	case b := <-s.in:
		return s.take(b), nil
	default:
	}
	select {
	case b := <-s.in:
		return s.take(b), nil
	case <-s.done:
		// Changes that arrived before the failure are still good.
		select {
		case b := <-s.in:
			return s.take(b), nil
		default:
		}
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *session) take(b []core.Change) []core.Change {
	n := len(b)
	s.buffered.Add(-int64(n))
	s.window.Add(int64(n))
	s.outMu.Lock()
	s.outCredits += n
	s.outMu.Unlock()
	s.wake()
	return b
}

func (s *session) ack(pos core.Position) {
	s.outMu.Lock()
	s.outAck = &pos
	s.outMu.Unlock()
	s.wake()
}

func (s *session) has(capability string) bool { return slices.Contains(s.caps, capability) }

// close asks the plugin to close its source, waits for the answer within
// ctx, and stops the process. It is called once.
func (s *session) close(ctx context.Context) error {
	return s.link.close(ctx, func() {
		// Flush the last ack before close, so the plugin sees it first.
		s.outMu.Lock()
		ack := s.outAck
		s.outAck = nil
		s.outMu.Unlock()
		if ack != nil {
			_ = s.send(&plugin.Message{Type: plugin.TypeAck, Position: ack})
		}
	})
}
