package webhook

import (
	"context"
	"fmt"

	"github.com/tributary/tributary/core"
)

// Drain stops intake and returns the deliveries accepted and not read yet,
// for the runtime to publish on a clean stop (core.Drainer). It unmounts
// the handler (the sidecar answers 503 with Retry-After from then on) and,
// with AckMode AckInbox, stops the inbox writer: deliveries it committed
// were answered 2xx and are queued; those still waiting for a commit are
// answered 503 and retried by their senders (and a backlog spilled to the
// inbox's segments is returned up to a bound; see drainable). With AckStream the deliveries
// held in memory are returned: their senders get 2xx once they are on the
// stream, as usual. What Drain returns is acknowledged through Ack; the
// inbox keeps it until then (a failed publish leaves it for the next
// Open). Close follows as usual.
func (s *Source) Drain(ctx context.Context) ([]core.Change, error) {
	r, err := s.current()
	if err != nil {
		return nil, err
	}
	r.unmnt()
	if !r.streamAck {
		if err := r.ib.stop(ctx); err != nil {
			return nil, fmt.Errorf("drain webhook source at %q: %w", s.cfg.Path, err)
		}
	}
	r.qmu.Lock()
	recs := r.takeLocked(r.drainable())
	r.qmu.Unlock()
	if err := r.restore(recs); err != nil {
		return nil, fmt.Errorf("drain webhook source at %q: %w", s.cfg.Path, err)
	}
	return s.changes(r, recs), nil
}

// drainable is how many records at the head of the queue Drain takes:
// those in memory, and spilled ones up to queueMemory read back. The
// spilled ones past it stay in the inbox, durable and not acknowledged,
// and are read first at the next Open; a stop does not load a backlog of
// max_pending deliveries into memory. r.qmu is held.
func (r *run) drainable() int {
	budget := queueMemory
	for i, rec := range r.queue {
		if !rec.spilled {
			continue
		}
		if budget -= rec.size + recordOverhead; budget < 0 {
			return i
		}
	}
	return len(r.queue)
}

var _ core.Drainer = (*Source)(nil)
