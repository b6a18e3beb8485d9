package webhook

import (
	"slices"
	"time"
)

// With AckMode AckStream the stream is the inbox: a delivery is not
// written to the inbox log. Its handler checks the id against the
// deliveries in flight and the dedup index (admit), hands the delivery to
// Read in memory, and waits until the runtime's Ack covers it (land) to
// answer 2xx. Only then does the id join the dedup index, so a delivery
// costs one durable write, the stream's, before its answer; the id's
// record in the seen file follows without a flush of its own (writeIDs).

// flight is a delivery of AckStream held in memory until the stream
// acknowledges it. Its handler, and those of identical deliveries that
// arrive meanwhile, wait for done.
type flight struct {
	rec  *record
	d    digest
	size int64
	// done is closed once the delivery is acknowledged (acked true) or
	// dropped (acked false); acked is written before and read after.
	done  chan struct{}
	acked bool
	// read says Read took the delivery, after which it can no longer be
	// dropped (guarded by the run's qmu).
	read bool
}

// admission is what admit did with a delivery.
type admission int

const (
	// admitted: held for Read; wait for the flight.
	admitted admission = iota
	// admitFlying: an identical delivery is in flight; wait for it.
	admitFlying
	// admitDuplicate: the id was acknowledged within the dedup window.
	admitDuplicate
	// admitFull: max_pending or max_pending_bytes is reached.
	admitFull
	// admitClosed: the source is closing.
	admitClosed
)

// admit hands rec, of size body bytes, to Read in memory unless its id is
// in flight or acknowledged within the window, or the bounds are reached.
// The check and the claim are one step under ib.dmu, as are land's
// acknowledgement and release, so that two identical deliveries are never
// both emitted: the second either finds the first in flight or its id in
// the dedup index.
func (r *run) admit(rec *record, size int64, maxN int, maxB int64) (*flight, admission) {
	d := digestOf(rec.id)
	ib := r.ib
	ib.dmu.Lock()
	if fl, ok := r.flights[rec.id]; ok {
		ib.dmu.Unlock()
		return fl, admitFlying
	}
	if ib.dclosed {
		ib.dmu.Unlock()
		return nil, admitClosed
	}
	if ib.seen(d) {
		ib.dmu.Unlock()
		return nil, admitDuplicate
	}
	if !r.reserve(size, maxN, maxB) {
		ib.dmu.Unlock()
		return nil, admitFull
	}
	fl := &flight{rec: rec, d: d, size: size, done: make(chan struct{})}
	rec.fl = fl
	r.flights[rec.id] = fl
	ib.dmu.Unlock()
	r.push(rec)
	return fl, admitted
}

// land answers the flights the stream acknowledged and puts their ids in
// the dedup index. Their reservations are released by Ack.
func (r *run) land(fls []*flight) {
	ib := r.ib
	ib.dmu.Lock()
	for _, fl := range fls {
		ib.accept(fl.d, fl.rec.id, fl.rec.received)
		if r.flights[fl.rec.id] == fl {
			delete(r.flights, fl.rec.id)
		}
		fl.acked = true
		close(fl.done)
	}
	ib.dmu.Unlock()
	ib.idsAdded()
}

// drop takes back a flight whose handler stops waiting (timeout, sender
// gone) and reports whether it did: once Read took the delivery it stays
// in flight, since its events may be on their way to the stream, and a
// retry waits for its acknowledgement.
func (r *run) drop(fl *flight) bool {
	r.qmu.Lock()
	i := -1
	if !fl.read {
		i = slices.IndexFunc(r.queue, func(e qent) bool { return e.rec == fl.rec })
		if i >= 0 {
			r.queue = slices.Delete(r.queue, i, i+1)
			r.qlen--
			r.qmem -= fl.rec.memory()
		}
	}
	r.qmu.Unlock()
	if i < 0 {
		return false
	}
	r.ib.dmu.Lock()
	if r.flights[fl.rec.id] == fl {
		delete(r.flights, fl.rec.id)
	}
	close(fl.done)
	r.ib.dmu.Unlock()
	r.release(fl.size)
	return true
}

// wait blocks until fl is acknowledged (nil), dropped, timeout passes,
// gone is closed (the sender left) or the run closes. Its handler (own)
// drops the delivery when it stops waiting first.
func (r *run) wait(fl *flight, own bool, timeout time.Duration, gone <-chan struct{}) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var err error
	select {
	case <-fl.done:
	case <-t.C:
		err = errAckTimeout
	case <-gone:
		err = errSenderGone
	case <-r.closed:
		return ErrClosed
	}
	if err != nil && own && r.drop(fl) {
		return err
	}
	select {
	case <-fl.done:
		if fl.acked {
			return nil
		}
		return errDropped
	default:
		return err
	}
}
