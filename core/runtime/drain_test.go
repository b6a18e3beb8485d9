package runtime_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// drainSource is a seqSource that holds `held` more changes, numbered
// after its total, which only Drain returns: what a webhook answered for
// and Read has not returned yet.
type drainSource struct {
	seqSource
	held     int
	dmu      sync.Mutex
	drains   int
	readDone bool
}

func (s *drainSource) Read(ctx context.Context) ([]core.Change, error) {
	chs, err := s.seqSource.Read(ctx)
	if err != nil && ctx.Err() != nil {
		s.dmu.Lock()
		s.readDone = true
		s.dmu.Unlock()
	}
	return chs, err
}

func (s *drainSource) Drain(context.Context) ([]core.Change, error) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.drains++
	if !s.readDone {
		return nil, nil // called while Read runs: the test fails below
	}
	var out []core.Change
	for i := s.total + 1; i <= s.total+s.held; i++ {
		out = append(out, core.Change{
			Op: core.OpCreate, Key: map[string]any{"id": i}, After: map[string]any{"id": i},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i))},
		})
	}
	return out, nil
}

var _ core.Drainer = (*drainSource)(nil)

// TestCleanStopDrainsTheSource stops a runtime whose source holds changes
// it accepted and Read did not return: the stop publishes them and acks
// them before Close, once, after Read returned.
func TestCleanStopDrainsTheSource(t *testing.T) {
	st := memstream.New()
	src := &drainSource{seqSource: seqSource{total: 5}, held: 3}
	_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: mapper("orders", 0)})
	waitFor(t, "the changes Read returned", func() bool { return src.lastAck() == 5 })
	stop()
	src.dmu.Lock()
	drains, readDone := src.drains, src.readDone
	src.dmu.Unlock()
	if drains != 1 || !readDone {
		t.Fatalf("Drain called %d times (Read returned before: %v), want once after Read", drains, readDone)
	}
	if got := len(st.Messages("test.created")); got != 8 {
		t.Fatalf("stream holds %d events after the stop, want 8 (5 read, 3 drained)", got)
	}
	if got := src.lastAck(); got != 8 {
		t.Fatalf("last ack %d after the stop, want 8: the drained changes acknowledged", got)
	}
	src.mu.Lock()
	closed := src.closed
	src.mu.Unlock()
	if closed != 1 {
		t.Fatalf("Close called %d times, want 1", closed)
	}
}
