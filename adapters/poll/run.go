package poll

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/tributary/tributary/core"
)

// loop runs the schedule until ctx is done or a run fails.
func (s *Source) loop(ctx context.Context, met *metrics, startedNS, doneNS int64) {
	defer close(s.done)
	var queue []time.Time
	var last time.Time
	switch {
	case startedNS > doneNS:
		// A run was not fully acknowledged: run it again, same run time.
		queue = []time.Time{time.Unix(0, startedNS).UTC()}
		last = queue[0]
	case doneNS == 0:
		queue = []time.Time{s.now().UTC()}
		last = queue[0]
	default:
		last = time.Unix(0, doneNS).UTC()
	}
	for {
		if len(queue) == 0 {
			now := s.now()
			m := missed(s.sched, last, now, s.cfg.MaxCatchUp)
			if len(m) > 0 && s.cfg.CatchUp == CatchUpOne {
				m = m[len(m)-1:]
			}
			queue = m
		}
		if len(queue) == 0 {
			next := s.sched.Next(last)
			if next.IsZero() {
				<-ctx.Done()
				return
			}
			wait := next.Sub(s.now())
			if s.cfg.Jitter > 0 {
				wait += time.Duration(rand.Int64N(int64(s.cfg.Jitter)))
			}
			s.mu.Lock()
			s.nextRun = next
			s.mu.Unlock()
			t := time.NewTimer(max(wait, 0))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		rt := queue[0].UTC()
		queue = queue[1:]
		last = rt
		start := time.Now()
		if err := s.run(ctx, rt); err == nil {
			end := s.now()
			s.caughtUp.Store(end.UnixNano())
			met.duration.WithLabelValues(OutcomeSuccess).Observe(time.Since(start).Seconds())
			met.last.Set(float64(end.UnixNano()) / 1e9)
		} else {
			if ctx.Err() != nil {
				return
			}
			met.duration.WithLabelValues(OutcomeError).Observe(time.Since(start).Seconds())
			err = fmt.Errorf("poll run at %s: %w", rt.Format(time.RFC3339Nano), err)
			s.setError(err)
			select {
			case s.out <- item{err: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

// run executes one run and records its completion.
func (s *Source) run(ctx context.Context, rt time.Time) error {
	if err := s.st.setMeta(ctx, metaStarted, strconv.FormatInt(rt.UnixNano(), 10)); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastRun = rt
	s.mu.Unlock()
	s.runs.Add(1)
	var err error
	switch s.cfg.Mode {
	case ModeCursor:
		err = s.runCursor(ctx, rt)
	case ModeSnapshot:
		err = s.runSnapshot(ctx, rt)
	case ModeEach:
		err = s.runEach(ctx, rt)
	}
	if err != nil {
		return err
	}
	return s.endRun(ctx, rt)
}

// endRun marks rt complete at once when nothing is waiting for
// acknowledgement, and otherwise once everything before it is acknowledged.
func (s *Source) endRun(ctx context.Context, rt time.Time) error {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	s.mu.Lock()
	if s.head < len(s.fifo) {
		s.fifo = append(s.fifo, pending{kind: entryRunEnd, runNS: rt.UnixNano()})
		s.mu.Unlock()
		return nil
	}
	st := s.st
	s.mu.Unlock()
	// The run is over and acknowledged: record it even when Close is
	// under way, or it would run again after a restart.
	_, err := st.commit(context.WithoutCancel(ctx), &commitBatch{kind: s.cfg.Cursor, doneNS: rt.UnixNano()})
	return err
}

// send hands a batch to Read, blocking while Read is behind.
func (s *Source) send(ctx context.Context, batch []core.Change) error {
	if len(batch) == 0 {
		return nil
	}
	select {
	case s.out <- item{batch: batch}:
		s.emitted.Add(int64(len(batch)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// change builds the change of a record. Callers hold mu.
// pos becomes the change's Position.Data: callers do not modify it.
func (s *Source) change(r *Record, op core.Op, pos []byte, rt time.Time) core.Change {
	src := s.cfg.Source
	if r.Source.System != "" {
		src.System = r.Source.System
	}
	if r.Source.Schema != "" {
		src.Schema = r.Source.Schema
	}
	if r.Source.Table != "" {
		src.Table = r.Source.Table
	}
	if r.Source.Endpoint != "" {
		src.Endpoint = r.Source.Endpoint
	}
	if !r.Source.CommitTime.IsZero() {
		src.CommitTime = r.Source.CommitTime
	}
	if r.Source.TxID != "" {
		src.TxID = r.Source.TxID
	}
	if s.runMeta == nil || !s.runAt.Equal(rt) {
		s.runMeta = map[string]any{"run_time": rt, "poll_mode": s.modeAny}
		s.runAt = rt
	}
	meta := s.runMeta
	if len(r.Meta) > 0 {
		meta = make(map[string]any, len(r.Meta)+2)
		maps.Copy(meta, r.Meta)
		meta["run_time"] = s.runMeta["run_time"]
		meta["poll_mode"] = s.modeAny
	}
	if r.Op != "" && s.cfg.Mode != ModeSnapshot {
		op = r.Op
	}
	return core.Change{
		Op:       op,
		Key:      r.Key,
		After:    r.Data,
		Meta:     meta,
		Source:   src,
		Position: core.Position{Version: 1, Data: pos},
		Raw:      r.Raw,
		Invalid:  r.Invalid,
	}
}
