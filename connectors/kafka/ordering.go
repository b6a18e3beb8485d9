package kafka

import (
	"fmt"
	"slices"
)

// A failure never lets a later record of a partition overtake an earlier
// one (the ordering contract of core.AsyncPublisher): the runtime publishes
// a failed call's events again, and anything of the same key stored in the
// meantime would land ahead of them. Records of one key go to one
// partition, so the producer keeps the rule per partition, whatever the
// keys:
//
//   - Only a final failure counts: one reported to a call's done. A batch
//     retried inside the producer, with its sequence numbers, has not
//     failed, and neither has a refused batch split in two.
//   - When a batch of a partition finally fails (a refusal of one of its
//     records, a retriable error past the retries, a closing producer),
//     every batch queued behind it on the partition fails too.
//   - The partition stays poisoned until the done of every call that
//     failed on it has returned: records enqueued meanwhile fail at once,
//     and their calls poison it in turn. The check is made under the
//     producer's lock, with the check of the caller's context, so a call
//     is either enqueued before the poison is lifted, and fails, or sees
//     the context its caller cancelled in the failing done.
//
// The records that fail for an earlier failure are not at fault: their
// error does not wrap core.ErrPermanent, whatever the earlier failure was,
// and the runtime publishes them again.

// poison counts c among the calls that failed on pt, once, so that pt
// fails what is enqueued for it until c's done returns; cause is why, for
// the partition's first failure. Called with p.mu held.
func (p *producer) poison(pt *partition, c *call, cause error) {
	if slices.Contains(c.poisons, pt) {
		return
	}
	c.poisons = append(c.poisons, pt)
	if pt.poisoned == 0 {
		pt.failure = fmt.Errorf("publish to kafka topic %q partition %d: an earlier batch of the partition failed: %w", pt.topic, pt.id, cause)
	}
	pt.poisoned++
}

// lift uncounts c, whose done has returned, from the partitions it
// poisoned.
func (p *producer) lift(c *call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pt := range c.poisons {
		if pt.poisoned--; pt.poisoned == 0 {
			pt.failure = nil
		}
	}
	c.poisons = nil
}

// fail finishes the first ready batch of pt with err, cause being err
// without the partition and any permanence, then every batch queued behind
// it, the open one included, with the partition's failure. Every call
// concerned poisons pt. Called with p.mu held.
func (p *producer) fail(pt *partition, done []completion, err, cause error) []completion {
	for _, a := range pt.ready[0].acks {
		p.poison(pt, a.c, cause)
	}
	done = p.finish(pt, done, err)
	pt.seal()
	for len(pt.ready) > 0 {
		// Batches behind the first have no sequence numbers yet: they
		// leave no gap.
		for _, a := range pt.ready[0].acks {
			p.poison(pt, a.c, cause)
		}
		done = p.finish(pt, done, pt.failure)
	}
	return done
}

// refuse reports one record of c as failed with err instead of enqueued,
// merged with the previous report when that is c's with the same error.
func (w *wakeSet) refuse(c *call, err error) {
	if k := len(w.refused); k > 0 && w.refused[k-1].c == c && w.refused[k-1].err == err {
		w.refused[k-1].n++
		return
	}
	w.refused = append(w.refused, completion{c: c, n: 1, err: err})
}
