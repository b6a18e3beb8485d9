package kafka

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill/message"
)

// window is the state of a partition's delivered records: every record
// from the first one not acked to the last one delivered, at most size of
// them. Acks may come in any order; a nack makes the record and every
// record after it not acked wait to be delivered again.
type window struct {
	size int
	wake chan struct{} // signalled after every ack and nack
	// commit, when not nil, is told the last record of the run of acked
	// records from the start whenever it grows. It is called with mu
	// held, so that offsets are marked in order.
	commit func(*sarama.ConsumerMessage)

	mu    sync.Mutex
	slots []slot // in offset order
}

type slot struct {
	km *sarama.ConsumerMessage
	// gen counts the deliveries of km made void by a nack: an outcome
	// reported for an older one is stale.
	gen   int
	sent  bool             // the delivery of generation gen is out
	msg   *message.Message // the last delivery
	acked bool
}

// empty reports whether every delivered record is acked.
func (w *window) empty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.slots) == 0
}

// room reports whether a record may be added.
func (w *window) room() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.slots) < w.size
}

// add appends km, the record after the last one in the window.
func (w *window) add(km *sarama.ConsumerMessage) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.slots = append(w.slots, slot{km: km})
}

// next returns the first record in the window waiting to be delivered
// again, and its generation.
func (w *window) next() (*sarama.ConsumerMessage, int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, sl := range w.slots {
		if !sl.sent && !sl.acked {
			return sl.km, sl.gen, true
		}
	}
	return nil, 0, false
}

// find returns the index of the slot of offset off, or -1. Called with mu
// held.
func (w *window) find(off int64) int {
	i, ok := slices.BinarySearchFunc(w.slots, off, func(sl slot, off int64) int { return cmp.Compare(sl.km.Offset, off) })
	if !ok {
		return -1
	}
	return i
}

// sent records that msg, the delivery of off's generation gen, is out,
// unless a nack has made it void meanwhile.
func (w *window) sent(off int64, gen int, msg *message.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := w.find(off); i >= 0 {
		w.slots[i].msg = msg
		if w.slots[i].gen == gen {
			w.slots[i].sent = true
		}
	}
}

// watch waits for msg's ack or nack, or for ctx to end (an ack that raced
// with the end still counts, so that the group's offset moves past it).
func (w *window) watch(ctx context.Context, msg *message.Message, off int64, gen int) {
	select {
	case <-msg.Acked():
		w.ack(off)
	case <-msg.Nacked():
		w.nack(off, gen)
	case <-ctx.Done():
		select {
		case <-msg.Acked():
			w.ack(off)
		default:
		}
	}
}

// ack marks off acked, whichever of its deliveries the ack came from, and
// drops the acked records at the start of the window, committing the last
// of them.
func (w *window) ack(off int64) {
	w.mu.Lock()
	if i := w.find(off); i >= 0 {
		w.slots[i].acked = true
		n := 0
		for n < len(w.slots) && w.slots[n].acked {
			n++
		}
		if n > 0 {
			last := w.slots[n-1].km
			w.slots = append(w.slots[:0], w.slots[n:]...)
			clear(w.slots[len(w.slots) : len(w.slots)+n])
			if w.commit != nil {
				w.commit(last)
			}
		}
	}
	w.mu.Unlock()
	w.signal()
}

// nack makes off, and every record after it in the window not acked, wait
// to be delivered again, unless the nack is of a delivery already made
// void. A record whose ack came before the nack counts as acked, even if
// the ack is not accounted for yet.
func (w *window) nack(off int64, gen int) {
	w.mu.Lock()
	if i := w.find(off); i >= 0 && w.slots[i].gen == gen && !w.slots[i].acked {
		for j := i; j < len(w.slots); j++ {
			sl := &w.slots[j]
			if !sl.acked && sl.msg != nil {
				select {
				case <-sl.msg.Acked():
					sl.acked = true
				default:
				}
			}
			if !sl.acked {
				sl.sent = false
				sl.gen++
			}
		}
	}
	w.mu.Unlock()
	w.signal()
}

func (w *window) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
