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
// answered 503 and retried by their senders. With AckStream the deliveries
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
	recs := r.takeLocked(len(r.queue))
	r.qmu.Unlock()
	return s.changes(r, recs), nil
}

var _ core.Drainer = (*Source)(nil)
