package embedded

import (
	"errors"
	"fmt"
	"math"

	"github.com/tributary/tributary/core"
)

// A failure never lets a later message of a topic overtake an earlier one
// (the ordering contract of core.AsyncPublisher): the runtime publishes a
// failed call's events again, and anything of the same key written in the
// meantime would land ahead of them. The single writer keeps the rule per
// topic, whatever the keys:
//
//   - When a publish fails (its transaction failed, or one of its messages
//     is refused), every publish to the topic enqueued before the done of
//     that failure returned fails too, none of its messages written: those
//     behind it in its transaction, those still queued, and those enqueued
//     while the failure is reported. They fail in turn, and extend the
//     failure to their own done.
//   - Every op is stamped, as it is enqueued, with the store's generation,
//     under the lock that also checks the caller's context. Once the done
//     callbacks of a transaction's failed publishes have returned, the
//     writer starts a new generation: a publish to a failed topic stamped
//     with an earlier one fails, one stamped later is written. A caller
//     that cancels its context in the failing done, as the runtime does,
//     sees its next call either refused with the context's error or
//     failed.
//
// The publishes that fail for an earlier failure are not at fault: their
// error does not wrap core.ErrPermanent, whatever the earlier failure was,
// and the runtime publishes them again.

// pendingGen is the generation of a failure whose done callbacks have not
// all returned: every publish to its topic fails.
const pendingGen = math.MaxUint64

// failures is the writer's record of failed publishes, per topic. Used by
// the writer goroutine only.
type failures struct {
	topics map[string]*topicFailure
	// max is the largest generation in topics: a publish stamped with it
	// or later is written without a look at topics.
	max uint64
}

// topicFailure is the last failure of a topic.
type topicFailure struct {
	gen uint64 // the publishes stamped before it fail
	err error  // with this error
}

// poison fails, before batch is written, its publishes enqueued before the
// done of a failure of their topic returned, and those behind a refused
// publish of their topic.
func (f *failures) poison(batch []*op) {
	for _, o := range batch {
		if o.pub == nil {
			continue
		}
		if o.refused != nil {
			f.fail(o.rows[0].topic, o.refused)
			continue
		}
		if o.gen >= f.max {
			continue
		}
		if tf := f.topics[o.rows[0].topic]; tf != nil && o.gen < tf.gen {
			o.refused = tf.err
			tf.gen, f.max = pendingGen, pendingGen
		}
	}
}

// fail records that a publish to topic failed with cause: publishes to
// topic fail until lifted is called, with an error naming the first cause
// since the last lifted.
func (f *failures) fail(topic string, cause error) {
	if f.topics == nil {
		f.topics = map[string]*topicFailure{}
	}
	tf := f.topics[topic]
	if tf == nil {
		tf = &topicFailure{}
		f.topics[topic] = tf
	}
	if tf.gen != pendingGen {
		tf.gen, tf.err = pendingGen, earlierFailure(cause)
	}
	f.max = pendingGen
}

// lifted starts generation gen, once the done callbacks of the failures
// recorded since the last call have returned: publishes stamped with gen
// or later are written.
func (f *failures) lifted(gen uint64) {
	for _, tf := range f.topics {
		if tf.gen == pendingGen {
			tf.gen = gen
		}
	}
	f.max = gen
}

// earlierFailure returns the error of a publish that fails because an
// earlier one to its topic failed with cause.
func earlierFailure(cause error) error {
	if errors.Is(cause, core.ErrPermanent) {
		// The refusal belongs to the earlier message alone: this one is
		// published again, so the cause is told, not wrapped.
		return fmt.Errorf("an earlier publish to the topic failed: %s", cause.Error())
	}
	return fmt.Errorf("an earlier publish to the topic failed: %w", cause)
}
