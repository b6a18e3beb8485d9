package poll

import (
	"context"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
)

// runEach emits every record the fetcher returns, at the fetcher's
// positions.
func (s *Source) runEach(ctx context.Context, rt time.Time) error {
	s.mu.Lock()
	after := s.after
	s.mu.Unlock()
	n := 0
	return s.fetch(ctx, Request{Mode: ModeEach, RunTime: rt, After: after}, func(recs []Record) error {
		changes := make([]core.Change, 0, len(recs))
		s.mu.Lock()
		for i := range recs {
			r := &recs[i]
			n++
			if r.ID == "" {
				s.mu.Unlock()
				return core.Fatal(fmt.Errorf("record %d has no ID: a Fetcher in each mode must name every record's position", n))
			}
			p := s.posArena.copyString(r.ID)
			s.fifo = append(s.fifo, pending{pos: p, done: r.Done})
			changes = append(changes, s.change(r, core.OpCreate, p, rt))
		}
		s.mu.Unlock()
		return s.send(ctx, changes)
	})
}
