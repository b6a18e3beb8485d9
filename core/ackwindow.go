package core

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// AckWindow is the bookkeeping of SubscribeOptions.Window for one
// partition: every record from the first one not acked to the last one
// delivered, in offset order, at most Size of them. Acks may come in any
// order; only the run of acked records from the start (the low watermark)
// may be committed, and the window drops it. A nack makes the record, and
// every record after it not acked, wait to be delivered again.
//
// Each delivery of a record has a generation, which a nack increments: a
// nack of an older generation (a delivery a previous nack already made
// void) is stale and changes nothing. An ack counts whichever delivery it
// came from.
//
// One goroutine adds records and asks for the next one to send; acks and
// nacks may come from any goroutine. An AckWindow is safe for concurrent
// use.
type AckWindow[T any] struct {
	size   int
	offset func(T) int64
	commit func(T)
	wake   chan struct{}
	// watching is signalled when SentWatched makes Track's head or
	// first follower.
	watching chan struct{}

	mu    sync.Mutex
	slots []ackSlot[T] // in offset order
	// buf is the array slots lies in, from its start: acks drop slots
	// from the front of slots by slicing it, and Add moves them back to
	// the start once they reach the end, so that no ack copies the
	// window.
	buf []ackSlot[T]
	// next is where Next starts looking: every slot before it is sent or
	// acked, so that finding the next record to send does not scan the
	// records out for delivery again for every one sent.
	next int
	// watched are the deliveries of SentWatched whose ack or nack Track
	// has not accounted for yet, in the order they were sent.
	watched []watchedDelivery
	// taken is settle's buffer, only Track's goroutine uses it.
	taken []takenDelivery
}

// watchedDelivery is a delivery Track watches.
type watchedDelivery struct {
	off  int64
	gen  int
	msg  *message.Message
	done func()
}

type ackSlot[T any] struct {
	rec T
	off int64
	// gen counts the deliveries of rec made void by a nack.
	gen   int
	sent  bool             // the delivery of generation gen is out
	msg   *message.Message // the last delivery
	acked bool
}

// NewAckWindow returns an empty window of at most size records (1 when
// size is below 1), whose offsets offset tells. commit, when not nil, is
// told the last record of the run of acked records from the start each
// time an ack makes the run grow; it is called with the window's lock
// held, so that commits come in offset order, and must not call the
// window.
func NewAckWindow[T any](size int, offset func(T) int64, commit func(last T)) *AckWindow[T] {
	return &AckWindow[T]{size: max(size, 1), offset: offset, commit: commit, wake: make(chan struct{}, 1), watching: make(chan struct{}, 1)}
}

// Size returns the most records the window holds.
func (w *AckWindow[T]) Size() int { return w.size }

// Wake returns a channel signalled after every ack and nack, to wait on
// when there is nothing to send. One signal may stand for several.
func (w *AckWindow[T]) Wake() <-chan struct{} { return w.wake }

// Empty reports whether every record added is acked.
func (w *AckWindow[T]) Empty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.slots) == 0
}

// Room reports whether a record may be added.
func (w *AckWindow[T]) Room() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.slots) < w.size
}

// Add appends rec, the record after the last one in the window, waiting
// to be sent in generation 0. The caller checks Room first.
func (w *AckWindow[T]) Add(rec T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.slots) == cap(w.slots) {
		// The slots reached the end of their array: move them to the
		// start of it when they fill half of it at most, or else of a
		// new array twice their number, so that each move is paid for by
		// as many acks.
		n := len(w.slots)
		if cap(w.buf) == 0 || 2*n > cap(w.buf) {
			w.buf = make([]ackSlot[T], 0, max(2*n, 8))
			copy(w.buf[:n], w.slots)
		} else {
			copy(w.buf[:n], w.slots)
			clear(w.buf[n:cap(w.buf)])
		}
		w.slots = w.buf[:n]
	}
	w.slots = append(w.slots, ackSlot[T]{rec: rec, off: w.offset(rec)})
}

// Next returns the first record in the window waiting to be sent (added
// and not sent yet, or made to wait again by a nack) and the generation
// of its delivery. ok is false when none is waiting.
func (w *AckWindow[T]) Next() (rec T, gen int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ; w.next < len(w.slots); w.next++ {
		if sl := &w.slots[w.next]; !sl.sent && !sl.acked {
			return sl.rec, sl.gen, true
		}
	}
	return rec, 0, false
}

// find returns the index of the slot of offset off, or -1. Called with mu
// held.
func (w *AckWindow[T]) find(off int64) int {
	i, ok := slices.BinarySearchFunc(w.slots, off, func(sl ackSlot[T], off int64) int { return cmp.Compare(sl.off, off) })
	if !ok {
		return -1
	}
	return i
}

// Sent records that msg, the delivery of generation gen of the record at
// offset off, is out, unless a nack has made that generation void
// meanwhile. A nack of the record's later deliveries then checks msg for
// an ack that came first.
func (w *AckWindow[T]) Sent(off int64, gen int, msg *message.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sentLocked(off, gen, msg)
}

func (w *AckWindow[T]) sentLocked(off int64, gen int, msg *message.Message) {
	if i := w.find(off); i >= 0 {
		w.slots[i].msg = msg
		if w.slots[i].gen == gen {
			w.slots[i].sent = true
		}
	}
}

// SentWatched is Sent for a delivery that Track watches, in place of a
// Watch of its own: done, when not nil, is called once Track has
// accounted for its ack or nack, or once Track ends.
func (w *AckWindow[T]) SentWatched(off int64, gen int, msg *message.Message, done func()) {
	w.mu.Lock()
	w.sentLocked(off, gen, msg)
	w.watched = append(w.watched, watchedDelivery{off: off, gen: gen, msg: msg, done: done})
	n := len(w.watched)
	w.mu.Unlock()
	if n <= 2 {
		// A new head to wait for, or the first delivery behind it: the
		// one that needs the scan timer.
		select {
		case w.watching <- struct{}{}:
		default:
		}
	}
}

// trackScan is how often Track looks at the acks and nacks of the
// deliveries behind the one it waits for.
const trackScan = 5 * time.Millisecond

// Track accounts for the acks and nacks of the deliveries recorded with
// SentWatched, as Watch would for each, until ctx ends; then it accounts
// for the acks that came before and calls the done of every delivery left.
// End ctx once nothing more is sent (not with the subscription's context,
// which may end between a send and its SentWatched), so that the acks of
// the last deliveries count.
// One goroutine runs it for a window, in place of a goroutine per delivery:
// it waits for the oldest delivery and, once that one is acked or nacked,
// takes the deliveries after it acked or nacked by then too. The acks and
// nacks of deliveries behind one still out are taken every few
// milliseconds; the low watermark does not wait for them, as it cannot
// move before the oldest record anyway.
func (w *AckWindow[T]) Track(ctx context.Context) {
	scan := time.NewTimer(trackScan)
	defer scan.Stop()
	armed := true
	for {
		w.mu.Lock()
		n := len(w.watched)
		var head *message.Message
		if n > 0 {
			head = w.watched[0].msg
		}
		w.mu.Unlock()
		if n > 1 && !armed {
			scan.Reset(trackScan)
			armed = true
		}
		var acked, nacked <-chan struct{}
		if head != nil {
			acked, nacked = head.Acked(), head.Nacked()
		}
		var scanned <-chan time.Time
		if armed {
			scanned = scan.C
		}
		select {
		case <-acked:
			w.settle(false)
		case <-nacked:
			w.settle(false)
		case <-scanned:
			armed = false
			w.settle(true)
		case <-w.watching:
		case <-ctx.Done():
			w.mu.Lock()
			left := w.watched
			w.watched = nil
			w.mu.Unlock()
			for _, d := range left {
				select {
				case <-d.msg.Acked():
					w.Ack(d.off)
				default:
				}
				if d.done != nil {
					d.done()
				}
			}
			return
		}
	}
}

// StartTracking runs Track in a goroutine of its own and returns the
// function that ends it and waits until it has accounted for every
// delivery: call it once nothing more is sent (`defer w.StartTracking()()`
// in the function that sends).
func (w *AckWindow[T]) StartTracking() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	tracked := make(chan struct{})
	go func() {
		defer close(tracked)
		w.Track(ctx)
	}()
	return func() {
		cancel()
		<-tracked
	}
}

// settle accounts for the watched deliveries acked or nacked by now: those
// from the oldest up to the first still out, or with all every one.
func (w *AckWindow[T]) settle(all bool) {
	w.mu.Lock()
	taken := w.taken[:0]
	kept := w.watched[:0]
	rest := len(w.watched)
	for i, d := range w.watched {
		select {
		case <-d.msg.Acked():
			taken = append(taken, takenDelivery{d, true})
			continue
		default:
		}
		select {
		case <-d.msg.Nacked():
			taken = append(taken, takenDelivery{d, false})
			continue
		default:
		}
		if !all {
			rest = i
			break
		}
		kept = append(kept, d)
	}
	kept = append(kept, w.watched[rest:]...)
	clear(w.watched[len(kept):])
	w.watched = kept
	w.mu.Unlock()
	// In the order they were sent, as their own Watch calls could have.
	for _, t := range taken {
		if t.ack {
			w.Ack(t.off)
		} else {
			w.Nack(t.off, t.gen)
		}
		if t.done != nil {
			t.done()
		}
	}
	clear(taken)
	w.taken = taken
}

// takenDelivery is a watched delivery settle found acked or nacked.
type takenDelivery struct {
	watchedDelivery
	ack bool
}

// Watch waits for msg's ack or nack and accounts for it as Ack or Nack of
// off's generation gen does, or waits for ctx to end (an ack that raced
// with the end still counts, so that the low watermark moves past it).
func (w *AckWindow[T]) Watch(ctx context.Context, msg *message.Message, off int64, gen int) {
	select {
	case <-msg.Acked():
		w.Ack(off)
	case <-msg.Nacked():
		w.Nack(off, gen)
	case <-ctx.Done():
		select {
		case <-msg.Acked():
			w.Ack(off)
		default:
		}
	}
}

// Ack marks the record at offset off acked, whichever of its deliveries
// the ack came from, and drops the run of acked records at the start of
// the window. It returns how many records the low watermark moved past
// and the last of them, the one to commit (n is 0 when it did not move).
// An offset not in the window changes nothing.
func (w *AckWindow[T]) Ack(off int64) (last T, n int) {
	w.mu.Lock()
	if i := w.find(off); i >= 0 {
		w.slots[i].acked = true
		for n < len(w.slots) && w.slots[n].acked {
			n++
		}
		if n > 0 {
			last = w.slots[n-1].rec
			clear(w.slots[:n])
			w.slots = w.slots[n:]
			if len(w.slots) == 0 {
				w.slots = w.buf[:0]
			}
			w.next = max(w.next-n, 0)
			if w.commit != nil {
				w.commit(last)
			}
		}
	}
	w.mu.Unlock()
	w.signal()
	return last, n
}

// Nack makes the record at offset off, and every record after it in the
// window not acked, wait to be sent again in a new generation, unless
// gen is not the record's current generation (a stale nack of a delivery
// already made void) or the record is acked. A record whose delivery was
// acked before the nack counts as acked, even if its ack is not accounted
// for yet.
func (w *AckWindow[T]) Nack(off int64, gen int) {
	w.mu.Lock()
	if i := w.find(off); i >= 0 && w.slots[i].gen == gen && !w.slots[i].acked {
		w.next = min(w.next, i)
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

func (w *AckWindow[T]) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
