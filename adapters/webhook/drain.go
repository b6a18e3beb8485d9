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
// inbox's segments is returned up to a bound). With AckStream the deliveries
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
	// Those in memory, and spilled ones up to queueMemory read back. The
	// spilled ones past it stay in the inbox, durable and not
	// acknowledged, and are read first at the next Open: a stop does not
	// load a backlog of max_pending deliveries into memory.
	var recs []*record
	budget := queueMemory
	for budget > 0 {
		got, readBack, err := r.take(readLimit)
		if err != nil {
			return nil, fmt.Errorf("drain webhook source at %q: %w", s.cfg.Path, err)
		}
		if len(got) == 0 {
			break
		}
		recs = append(recs, got...)
		if readBack {
			for _, rec := range got {
				budget -= rec.memory()
			}
		}
	}
	return s.changes(r, recs), nil
}

var _ core.Drainer = (*Source)(nil)
