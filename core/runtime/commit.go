package runtime

import (
	"context"
	"time"

	"github.com/tributary/tributary/core"
)

// This file completes changes once their events are durable, stores the
// low watermark as the checkpoint and then acks the source, and drains a
// session that ends.

// complete marks the changes seqs durable and wakes the committer when the
// watermark moved.
func (s *session) complete(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	pos, advanced := s.tracker.DoneAll(seqs)
	s.c.inFlight.Add(-int64(len(seqs)))
	var covered uint64
	if advanced && s.c.r.tracer != nil {
		// A lower bound: changes added meanwhile count as pending.
		added := s.added.Load()
		covered = added - uint64(s.tracker.Pending())
	}
	s.mu.Lock()
	if advanced {
		s.mark = pos
		s.markSeq++
		s.markCovered = covered
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if advanced {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// commitLoop stores the watermark as the checkpoint, then acks the source,
// coalescing advances that arrive while a save is in progress.
func (s *session) commitLoop() {
	for {
		select {
		case <-s.kick:
		case <-s.pubCtx.Done():
			return
		}
		s.commit(s.pubCtx)
	}
}

func (s *session) commit(ctx context.Context) {
	s.mu.Lock()
	pos, seq, covered := s.mark, s.markSeq, s.markCovered
	s.mu.Unlock()
	if seq == s.committedSeq {
		return
	}
	cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: s.c.cfg.Name, Position: pos, Time: time.Now().UTC()}
	for n := 0; ; n++ {
		err := s.c.r.opts.Stream.Checkpoints().Save(ctx, cp)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.c.recordError("checkpoint", err)
		select {
		case <-time.After(s.c.cfg.Retry.Delay(n)):
		case <-ctx.Done():
			return
		}
	}
	s.committedSeq = seq
	s.c.r.streamOK.Store(time.Now().UnixNano())
	s.c.mu.Lock()
	s.c.cpPos, s.c.cpTime = cp.Position, cp.Time
	s.c.mu.Unlock()
	if err := s.src.Ack(ctx, pos); err != nil && ctx.Err() == nil {
		s.c.recordError("ack", err)
		s.c.log.Warn("source ack failed; the next ack covers it", "err", err)
	}
	if s.c.r.tracer != nil {
		s.endAcks(covered)
	}
}

// drain waits until every read change is committed or ctx is done. It
// reports whether everything drained.
func (s *session) drain(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	for s.tracker.Pending() > 0 && ctx.Err() == nil && s.fatal.Load() == nil {
		s.cond.Wait()
	}
	s.mu.Unlock()
	drained := s.tracker.Pending() == 0
	// Stop the background committer, then commit what is left from here,
	// so that no Ack runs after Close.
	s.cancelPub()
	s.commitWG.Wait()
	if ctx.Err() == nil {
		s.commit(ctx)
	}
	return drained
}
