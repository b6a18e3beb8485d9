package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// This file is what a sink's loop does with the results of a Write:
// delivered events are acked, refused ones and those past the retry
// schedule are dead-lettered, the others wait for their next attempt
// with their key behind them; and the circuit breaker that stops a sink
// whose target fails every delivery, then probes it.

// written handles the results of one Write.
func (l *sinkLoop) written(w writeResult) {
	if !w.early {
		l.writes--
	}
	if w.probe {
		l.probing = false
	}
	res := w.results
	if len(res) != len(w.batch) {
		err := fmt.Errorf("sink %q returned %d results for %d deliveries; a sink returns one result per delivery", l.cfg.Name, len(res), len(w.batch))
		fixed := make([]core.Result, len(w.batch))
		n := copy(fixed, res)
		for i := n; i < len(fixed); i++ {
			fixed[i] = core.Result{Status: core.StatusRetry, Err: err}
		}
		res = fixed
	}
	now := time.Now()
	// Only deliveries made with the circuit closed use up the schedule:
	// a probe, or a Write that ends after the circuit opened, waits for
	// the circuit instead.
	counting := l.circuit == CircuitClosed && !w.probe
	var touched []*sinkKey
	delivered := 0
	for i, it := range w.batch {
		r := res[i]
		k := l.keys[it.key]
		if len(touched) == 0 || touched[len(touched)-1] != k {
			touched = append(touched, k)
		}
		switch {
		case r.Err != nil && errors.Is(r.Err, core.ErrSinkGone):
			// The event stays uncommitted: the sink stops before it.
			if l.gone == nil {
				l.gone = fmt.Errorf("deliver event %s: %w", it.ev.ID, r.Err)
			}
		case r.Status == core.StatusDelivered:
			l.consecutive = 0
			delivered++
			l.s.m.delivery.Observe(now.Sub(it.appended).Seconds())
			l.finish(it)
		case r.Status == core.StatusFailed:
			l.consecutive = 0
			err := r.Err
			if err == nil {
				err = errors.New("the target refused the event")
			}
			l.s.recordError(fmt.Errorf("deliver event %s: refused: %w", it.ev.ID, err))
			l.deadLetter(it, k, SinkReasonRefused, err, r.Response)
		case r.Status == core.StatusRetry && (r.Err != nil || r.RetryAfter > 0):
			l.retry(it, k, r, counting, now)
		default:
			// Not attempted (an earlier event of its key was not
			// delivered, or the Write was cancelled): it goes again as it
			// is.
		}
	}
	if delivered > 0 {
		l.s.delivered.Add(uint64(delivered))
		l.s.m.delivered.Add(float64(delivered))
	}
	for _, k := range touched {
		kept := k.items[:0]
		for _, it := range k.items[:k.sent] {
			if !it.done && !it.dead {
				kept = append(kept, it)
			}
		}
		kept = append(kept, k.items[k.sent:]...)
		clear(k.items[len(kept):])
		k.items = kept
		k.busy, k.sent = false, 0
		if k.park {
			k.park = false
			l.park(k)
		}
		l.schedule(k)
	}
	l.updateCircuit(w, res)
}

// retry handles a result asking to deliver it again: it waits for the
// next delay of the schedule (or the target's Retry-After), its key behind
// it, or goes to the dead-letter topic once the schedule is used up.
func (l *sinkLoop) retry(it *sinkItem, k *sinkKey, r core.Result, counting bool, now time.Time) {
	err := r.Err
	if err == nil {
		err = fmt.Errorf("the target asked to retry after %s", r.RetryAfter)
	} else {
		l.consecutive++
	}
	l.s.recordError(fmt.Errorf("deliver event %s: %w", it.ev.ID, err))
	l.s.retried.Add(1)
	l.s.m.retries.Inc()
	if !it.failed {
		it.failed = true
		l.s.retriesPending.Add(1)
	}
	var delay time.Duration
	if counting {
		it.attempt++
		if it.attempt > len(l.cfg.Retry) {
			l.deadLetter(it, k, SinkReasonFailed, fmt.Errorf("not delivered after %d attempts: %w", it.attempt, err), r.Response)
			return
		}
		delay = l.cfg.Retry[it.attempt-1]
	}
	if r.RetryAfter > 0 {
		delay = r.RetryAfter
	}
	if due := now.Add(delay); due.After(k.due) {
		k.due = due
	}
	if l.store != nil && delay >= l.s.tuning.parkAfter {
		k.park = true
	}
}

// updateCircuit opens the circuit once enough Write results in a row
// asked to retry with an error, and closes or reopens it after a probe.
func (l *sinkLoop) updateCircuit(w writeResult, res []core.Result) {
	if w.probe && len(res) > 0 {
		r := res[0]
		switch {
		case r.Status == core.StatusDelivered || r.Status == core.StatusFailed:
			// The target answered: deliver again.
			l.circuit, l.probeDue = CircuitClosed, false
			l.consecutive = 0
			l.probeDelay = l.s.tuning.probe
			l.s.setCircuit(CircuitClosed, nil)
			l.wakeAll()
			l.s.log.Info("sink circuit closed: the target took a probe")
		case r.Err != nil || r.RetryAfter > 0:
			l.probeDelay = min(2*l.probeDelay, l.s.tuning.maxProbe)
			l.openCircuit(r.Err)
		default:
			l.openCircuit(nil)
		}
		return
	}
	if l.circuit == CircuitClosed && l.consecutive >= l.s.tuning.failures {
		var last error
		for i := len(res) - 1; i >= 0 && last == nil; i-- {
			last = res[i].Err
		}
		l.openCircuit(last)
	}
}

// openCircuit stops delivering until a probe in probeDelay.
func (l *sinkLoop) openCircuit(cause error) {
	first := l.circuit == CircuitClosed
	l.circuit, l.probeDue = CircuitOpen, false
	l.probeTimer.Reset(l.probeDelay)
	err := fmt.Errorf("the last %d deliveries failed; delivering nothing, probing the target with one event in %s", l.consecutive, l.probeDelay)
	if cause != nil {
		err = fmt.Errorf("%w: %w", err, cause)
	}
	l.s.setCircuit(CircuitOpen, err)
	if first {
		l.s.log.Warn("sink circuit open", "err", err)
	}
}

// deadLetter sends it to the dead-letter topic; k, when not nil, waits
// until it is there.
func (l *sinkLoop) deadLetter(it *sinkItem, k *sinkKey, reason string, cause error, response string) {
	it.dead = true
	msg, err := sinkDeadLetterMessage(l.cfg.Name, it, reason, cause, response)
	if err != nil {
		l.fatal = core.Fatal(fmt.Errorf("dead-letter an event: %w", err))
		return
	}
	if k != nil {
		k.blocked++
	}
	l.publishDeadLetter(&dlJob{it: it, k: k, reason: reason, msg: msg})
}

func (l *sinkLoop) publishDeadLetter(j *dlJob) {
	if j.timer != nil {
		delete(l.dlTimer, j.timer)
		j.timer = nil
	}
	l.dls++
	topic := l.s.r.opts.DeadLetterTopic
	err := l.pub.PublishAsync(l.pubCtx, topic, []*message.Message{j.msg.Copy()}, func(err error) {
		l.dlMu.Lock()
		l.dlResults = append(l.dlResults, dlResult{job: j, err: err})
		l.dlMu.Unlock()
		select {
		case l.dlDone <- struct{}{}:
		default:
		}
	})
	if err != nil {
		l.dls--
		l.dlFailed(j, err)
	}
}

// deadLetteredAll takes the stream's answers for dead letters.
func (l *sinkLoop) deadLetteredAll() {
	l.dlMu.Lock()
	rs := l.dlResults
	l.dlResults = nil
	l.dlMu.Unlock()
	for _, d := range rs {
		l.deadLettered(d)
	}
}

// deadLettered is the stream's answer for a dead letter.
func (l *sinkLoop) deadLettered(d dlResult) {
	l.dls--
	j := d.job
	if d.err != nil {
		l.dlFailed(j, d.err)
		return
	}
	l.s.r.streamOK.Store(time.Now().UnixNano())
	l.s.deadLettered.Add(1)
	l.s.m.deadLetter(j.reason)
	l.finish(j.it)
	if j.k != nil {
		j.k.blocked--
		l.schedule(j.k)
	}
}

// dlFailed publishes a dead letter again after a backoff; the event stays
// uncommitted meanwhile. A record the stream refuses for good stops the
// sink rather than losing the event.
func (l *sinkLoop) dlFailed(j *dlJob, err error) {
	topic := l.s.r.opts.DeadLetterTopic
	l.s.recordError(fmt.Errorf("publish to dead-letter topic %q: %w", topic, err))
	if errors.Is(err, core.ErrPermanent) {
		if l.fatal == nil {
			l.fatal = core.Fatal(fmt.Errorf("the stream refused a record for dead-letter topic %q, stopping rather than losing it: %w", topic, err))
		}
		return
	}
	if l.stopping {
		return
	}
	d := l.s.r.opts.StreamRetry.Delay(j.attempt)
	j.attempt++
	j.timer = time.AfterFunc(d, func() {
		select {
		case l.dlRetry <- j:
		case <-l.done:
		}
	})
	l.dlTimer[j.timer] = struct{}{}
	l.s.log.Warn("dead letter not published, retrying", "err", err, "in", d.Round(time.Millisecond))
}
