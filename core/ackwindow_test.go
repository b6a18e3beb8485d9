package core_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// rec is a record of the tests' windows: its offset and a name.
type rec struct {
	off  int64
	name string
}

func recOffset(r rec) int64 { return r.off }

// fill returns a window of size with records at offsets first..first+n-1
// added, and the list the window's commit callback appends to.
func fill(t *testing.T, size int, first int64, n int) (*core.AckWindow[rec], *[]int64) {
	t.Helper()
	var commits []int64
	w := core.NewAckWindow(size, recOffset, func(last rec) { commits = append(commits, last.off) })
	for i := range n {
		if !w.Room() {
			t.Fatalf("no room for record %d of %d in a window of %d", i+1, n, size)
		}
		w.Add(rec{off: first + int64(i)})
	}
	return w, &commits
}

// sendAll takes every record waiting in w, marks it sent and returns its
// offsets with their generations, in the order Next gave them.
func sendAll(w *core.AckWindow[rec]) (offs []int64, gens []int) {
	for {
		r, gen, ok := w.Next()
		if !ok {
			return offs, gens
		}
		w.Sent(r.off, gen, message.NewMessage(r.name, nil))
		offs = append(offs, r.off)
		gens = append(gens, gen)
	}
}

// TestAckWindowLowWatermark checks that acks in any order move the low
// watermark only over the acked records from the start, returning and
// committing the last of them.
func TestAckWindowLowWatermark(t *testing.T) {
	tests := []struct {
		name    string
		acks    []int64
		moved   []int   // what each ack returns as n
		commits []int64 // what the commit callback is told, in order
		empty   bool
	}{
		{name: "in order", acks: []int64{10, 11, 12, 13}, moved: []int{1, 1, 1, 1}, commits: []int64{10, 11, 12, 13}, empty: true},
		{name: "reversed", acks: []int64{13, 12, 11, 10}, moved: []int{0, 0, 0, 4}, commits: []int64{13}, empty: true},
		{name: "gap at the start", acks: []int64{12, 11, 13}, moved: []int{0, 0, 0}},
		{name: "gap in the middle", acks: []int64{10, 12, 13, 11}, moved: []int{1, 0, 0, 3}, commits: []int64{10, 13}, empty: true},
		{name: "twice and unknown offsets", acks: []int64{10, 10, 9, 99, 11}, moved: []int{1, 0, 0, 0, 1}, commits: []int64{10, 11}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, commits := fill(t, 4, 10, 4)
			sendAll(w)
			for i, off := range tt.acks {
				last, n := w.Ack(off)
				if n != tt.moved[i] {
					t.Fatalf("ack %d of %d moved the watermark over %d records, want %d", i+1, off, n, tt.moved[i])
				}
				if n > 0 && last.off != (*commits)[len(*commits)-1] {
					t.Fatalf("ack %d of %d returned %d as the last record, but committed %d", i+1, off, last.off, (*commits)[len(*commits)-1])
				}
			}
			if !slices.Equal(*commits, tt.commits) {
				t.Errorf("commits %v, want %v", *commits, tt.commits)
			}
			if w.Empty() != tt.empty {
				t.Errorf("Empty() = %v, want %v", w.Empty(), tt.empty)
			}
		})
	}
}

// TestAckWindowRoom checks that the window holds at most its size of
// records, at least one, and makes room as the watermark moves.
func TestAckWindowRoom(t *testing.T) {
	tests := []struct {
		name string
		size int
		want int
	}{
		{name: "zero is one", size: 0, want: 1},
		{name: "negative is one", size: -3, want: 1},
		{name: "one", size: 1, want: 1},
		{name: "five", size: 5, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := fill(t, tt.size, 0, tt.want)
			if w.Size() != tt.want {
				t.Fatalf("Size() = %d, want %d", w.Size(), tt.want)
			}
			if w.Room() {
				t.Fatalf("room with %d records in a window of %d", tt.want, tt.want)
			}
			sendAll(w)
			if tt.want > 1 {
				w.Ack(int64(tt.want - 1)) // not at the start: no room made
				if w.Room() {
					t.Fatal("room after an ack that did not move the watermark")
				}
			}
			w.Ack(0)
			if !w.Room() {
				t.Fatal("no room after the first record was acked")
			}
		})
	}
}

// TestAckWindowNack checks that a nack makes the record and the records
// after it not acked wait to be sent again, in offset order, in a new
// generation, and that acks of any delivery and stale nacks behave.
func TestAckWindowNack(t *testing.T) {
	w, commits := fill(t, 5, 0, 5)
	offs, gens := sendAll(w)
	if !slices.Equal(offs, []int64{0, 1, 2, 3, 4}) || !slices.Equal(gens, []int{0, 0, 0, 0, 0}) {
		t.Fatalf("first sends %v generations %v, want 0..4 all of generation 0", offs, gens)
	}
	w.Ack(3)
	w.Nack(1, 0)
	offs, gens = sendAll(w)
	if !slices.Equal(offs, []int64{1, 2, 4}) || !slices.Equal(gens, []int{1, 1, 1}) {
		t.Fatalf("after a nack of 1, sends %v generations %v, want 1 2 4 of generation 1", offs, gens)
	}

	// A nack of the void generation 0 of 2 changes nothing.
	w.Nack(2, 0)
	if r, _, ok := w.Next(); ok {
		t.Fatalf("a stale nack made %d wait to be sent again", r.off)
	}
	// An ack of the void delivery still counts.
	w.Ack(2)
	// A nack of the current generation of an acked record changes nothing.
	w.Nack(2, 1)
	if r, _, ok := w.Next(); ok {
		t.Fatalf("a nack of an acked record made %d wait to be sent again", r.off)
	}
	if len(*commits) != 0 {
		t.Fatalf("committed %v with 1 not acked", *commits)
	}
	// A nack of 4 leaves the acked records before it alone.
	w.Nack(4, 1)
	offs, gens = sendAll(w)
	if !slices.Equal(offs, []int64{4}) || !slices.Equal(gens, []int{2}) {
		t.Fatalf("after a nack of 4, sends %v generations %v, want 4 of generation 2", offs, gens)
	}
	w.Ack(1)
	w.Ack(4)
	if _, n := w.Ack(0); n != 5 {
		t.Fatalf("the ack of 0 moved the watermark over %d records, want 5", n)
	}
	if !slices.Equal(*commits, []int64{4}) || !w.Empty() {
		t.Fatalf("commits %v, empty %v, want [4] and empty", *commits, w.Empty())
	}
}

// TestAckWindowVoidSend checks that a delivery a nack made void while it
// was being sent does not count as out: the record waits to be sent again.
func TestAckWindowVoidSend(t *testing.T) {
	w, _ := fill(t, 3, 0, 2)
	r0, g0, _ := w.Next()
	w.Sent(r0.off, g0, message.NewMessage("0", nil))
	r1, g1, _ := w.Next()
	w.Nack(0, 0) // before 1's send is recorded
	w.Sent(r1.off, g1, message.NewMessage("1", nil))
	offs, gens := sendAll(w)
	if !slices.Equal(offs, []int64{0, 1}) || !slices.Equal(gens, []int{1, 1}) {
		t.Fatalf("sends %v generations %v, want 0 1 of generation 1", offs, gens)
	}
}

// TestAckWindowNackSeesAck checks that a nack leaves alone a record whose
// delivery was acked before it, even if the ack is not accounted for yet.
func TestAckWindowNackSeesAck(t *testing.T) {
	w, commits := fill(t, 3, 0, 3)
	var msgs []*message.Message
	for {
		r, gen, ok := w.Next()
		if !ok {
			break
		}
		m := message.NewMessage(r.name, nil)
		w.Sent(r.off, gen, m)
		msgs = append(msgs, m)
	}
	msgs[2].Ack()
	w.Nack(1, 0)
	offs, _ := sendAll(w)
	if !slices.Equal(offs, []int64{1}) {
		t.Fatalf("after a nack of 1 with 2 acked, sends %v, want [1]", offs)
	}
	w.Ack(0)
	w.Ack(1)
	if !slices.Equal(*commits, []int64{0, 2}) {
		t.Fatalf("commits %v, want [0 2]", *commits)
	}
}

// TestAckWindowWatch checks that Watch accounts for an ack, a nack, and an
// ack that raced with the end of its context, and signals Wake.
func TestAckWindowWatch(t *testing.T) {
	w, commits := fill(t, 3, 0, 3)
	var msgs []*message.Message
	for {
		r, gen, ok := w.Next()
		if !ok {
			break
		}
		m := message.NewMessage(r.name, nil)
		w.Sent(r.off, gen, m)
		msgs = append(msgs, m)
	}
	ctx := context.Background()
	msgs[0].Ack()
	w.Watch(ctx, msgs[0], 0, 0)
	select {
	case <-w.Wake():
	default:
		t.Fatal("Wake not signalled after an ack")
	}
	msgs[1].Nack()
	w.Watch(ctx, msgs[1], 1, 0)
	if r, gen, ok := w.Next(); !ok || r.off != 1 || gen != 1 {
		t.Fatalf("after a watched nack, Next gives %d generation %d (%v), want 1 generation 1", r.off, gen, ok)
	}
	ended, cancel := context.WithCancel(ctx)
	cancel()
	m := message.NewMessage("1 again", nil)
	w.Sent(1, 1, m)
	m.Ack()
	w.Watch(ended, m, 1, 1)
	if !slices.Equal(*commits, []int64{0, 1}) {
		t.Fatalf("commits %v, want [0 1]", *commits)
	}
}

// modelWindow is the plainest bookkeeping of an AckWindow, which scans
// and copies freely: the reference TestAckWindowModel compares the window
// with.
type modelWindow struct {
	slots []modelSlot
}

type modelSlot struct {
	off         int64
	gen         int
	sent, acked bool
}

func (m *modelWindow) next() (int64, int, bool) {
	for _, s := range m.slots {
		if !s.sent && !s.acked {
			return s.off, s.gen, true
		}
	}
	return 0, 0, false
}

func (m *modelWindow) find(off int64) int {
	for i, s := range m.slots {
		if s.off == off {
			return i
		}
	}
	return -1
}

func (m *modelWindow) ack(off int64) (last int64, n int) {
	if i := m.find(off); i >= 0 {
		m.slots[i].acked = true
		for n < len(m.slots) && m.slots[n].acked {
			n++
		}
		if n > 0 {
			last = m.slots[n-1].off
			m.slots = slices.Clone(m.slots[n:])
		}
	}
	return last, n
}

func (m *modelWindow) nack(off int64, gen int) {
	if i := m.find(off); i >= 0 && m.slots[i].gen == gen && !m.slots[i].acked {
		for j := i; j < len(m.slots); j++ {
			if !m.slots[j].acked {
				m.slots[j].sent = false
				m.slots[j].gen++
			}
		}
	}
}

// TestAckWindowModel drives windows of several sizes with long random
// runs of adds, sends, acks in any order and nacks, and checks after
// every step that the window answers as the plain model does: the record
// to send next and its generation, the low watermark an ack moves, the
// commits, Room and Empty. Long runs make the window's array fill, move
// and grow many times over.
func TestAckWindowModel(t *testing.T) {
	tests := []struct {
		name string
		size int
		// acks and nacks are the chances, in percent, that a step acks
		// or nacks an outstanding record rather than adding or sending.
		acks, nacks int
		inOrder     bool
	}{
		{name: "one at a time", size: 1, acks: 40},
		{name: "small window", size: 4, acks: 40, nacks: 5},
		{name: "sink window, acks in order", size: 512, acks: 45, inOrder: true},
		{name: "sink window, acks in any order", size: 512, acks: 45, nacks: 1},
		{name: "sink window, many nacks", size: 512, acks: 35, nacks: 10},
		{name: "odd window", size: 37, acks: 50, nacks: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tt.size), uint64(tt.acks*100+tt.nacks)))
			var commits, modelCommits []int64
			w := core.NewAckWindow(tt.size, recOffset, func(last rec) { commits = append(commits, last.off) })
			var m modelWindow
			size := max(tt.size, 1)
			var next int64 = 1000
			// out are the deliveries sent and not acked or nacked yet.
			type delivery struct {
				off int64
				gen int
			}
			var out []delivery
			for step := range 20000 {
				switch p := rng.IntN(100); {
				case p < tt.acks && len(out) > 0:
					i := 0
					if !tt.inOrder {
						i = rng.IntN(len(out))
					}
					d := out[i]
					out = slices.Delete(out, i, i+1)
					last, n := w.Ack(d.off)
					mlast, mn := m.ack(d.off)
					if n != mn || (n > 0 && last.off != mlast) {
						t.Fatalf("step %d: ack of %d moved the watermark over %d records to %d, the model over %d to %d", step, d.off, n, last.off, mn, mlast)
					}
					if mn > 0 {
						modelCommits = append(modelCommits, mlast)
					}
				case p < tt.acks+tt.nacks && len(out) > 0:
					i := rng.IntN(len(out))
					d := out[i]
					w.Nack(d.off, d.gen)
					m.nack(d.off, d.gen)
					// The nacked delivery, and those of later records
					// not acked, are void: drop them from out.
					out = slices.DeleteFunc(out, func(o delivery) bool { return o.off >= d.off })
				default:
					r, gen, ok := w.Next()
					moff, mgen, mok := m.next()
					if ok != mok || (ok && (r.off != moff || gen != mgen)) {
						t.Fatalf("step %d: Next gives %d generation %d (%v), the model %d generation %d (%v)", step, r.off, gen, ok, moff, mgen, mok)
					}
					if ok {
						w.Sent(r.off, gen, nil)
						m.slots[m.find(moff)].sent = true
						out = append(out, delivery{r.off, gen})
						continue
					}
					if room := len(m.slots) < size; w.Room() != room {
						t.Fatalf("step %d: Room() = %v with %d records in a window of %d", step, w.Room(), len(m.slots), size)
					}
					if w.Room() {
						w.Add(rec{off: next})
						m.slots = append(m.slots, modelSlot{off: next})
						next += 1 + int64(rng.IntN(3)) // offsets need not be contiguous
					}
				}
				if w.Empty() != (len(m.slots) == 0) {
					t.Fatalf("step %d: Empty() = %v with %d records in the model", step, w.Empty(), len(m.slots))
				}
			}
			if !slices.Equal(commits, modelCommits) {
				t.Fatalf("commits differ from the model's: %d and %d of them", len(commits), len(modelCommits))
			}
			if len(commits) < 1000 {
				t.Fatalf("only %d commits in the run: the run tests too little", len(commits))
			}
		})
	}
}

// BenchmarkAckWindow is a subscription's use of a window of 512, the
// sinks' default: each record is added, sent, and acked by a consumer
// that acks in batches of 64 in order, as a sink's Writes do. One op is
// one record.
func BenchmarkAckWindow(b *testing.B) {
	w := core.NewAckWindow(512, recOffset, func(rec) {})
	var out []int64
	var next int64
	b.ReportAllocs()
	for range b.N {
		if r, gen, ok := w.Next(); ok {
			w.Sent(r.off, gen, nil)
			out = append(out, r.off)
		}
		if w.Room() {
			w.Add(rec{off: next})
			next++
		}
		if len(out) >= 448 {
			for _, off := range out[:64] {
				w.Ack(off)
			}
			out = append(out[:0], out[64:]...)
		}
	}
}

// TestAckWindowTrack checks that Track accounts for the acks and nacks of
// the deliveries recorded with SentWatched as Watch does for each: an ack
// behind the oldest delivery still out, a nack behind it (the record and
// those after it not acked wait to be sent again), the ack of a delivery
// a nack made void, and, once ctx ends, an ack not accounted for yet; and
// that it calls the done of every delivery once.
func TestAckWindowTrack(t *testing.T) {
	w, commits := fill(t, 6, 0, 6)
	ctx, cancel := context.WithCancel(context.Background())
	tracked := make(chan struct{})
	go func() {
		defer close(tracked)
		w.Track(ctx)
	}()
	dones := map[string]int{}
	var mu sync.Mutex
	msgs := map[int64]*message.Message{}
	send := func() []int64 {
		var offs []int64
		for {
			r, gen, ok := w.Next()
			if !ok {
				return offs
			}
			m := message.NewMessage(fmt.Sprintf("%d/%d", r.off, gen), nil)
			msgs[r.off] = m
			w.SentWatched(r.off, gen, m, func() {
				mu.Lock()
				dones[m.UUID]++
				mu.Unlock()
			})
			offs = append(offs, r.off)
		}
	}
	// waitFor waits until cond holds, as Track takes the acks and nacks
	// behind the oldest delivery every few milliseconds.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	done := func(id string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return dones[id] == 1
		}
	}
	if offs := send(); !slices.Equal(offs, []int64{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("sent %v, want 0..5", offs)
	}
	first := maps.Clone(msgs)
	// Behind 0, which is still out: 2 acked, then 3 nacked.
	first[2].Ack()
	waitFor("the ack of 2 behind 0", done("2/0"))
	first[3].Nack()
	waitFor("the nack of 3 behind 0", done("3/0"))
	if offs := send(); !slices.Equal(offs, []int64{3, 4, 5}) {
		t.Fatalf("after the nack of 3, sent %v again, want 3 4 5", offs)
	}
	// The void delivery of 4 is acked: it counts. A nack of the void
	// delivery of 5 changes nothing.
	first[4].Ack()
	first[5].Nack()
	first[0].Ack()
	waitFor("the ack of 0", done("0/0"))
	waitFor("the void deliveries", func() bool { return done("4/0")() && done("5/0")() })
	if r, _, ok := w.Next(); ok {
		t.Fatalf("a nack of a void delivery made %d wait to be sent again", r.off)
	}
	first[1].Ack()
	waitFor("the ack of 1", done("1/0"))
	if !slices.Equal(*commits, []int64{0, 2}) {
		t.Fatalf("commits %v, want [0 2]", *commits)
	}
	// 3 and 5 are out again: 3 is acked as ctx ends.
	msgs[3].Ack()
	cancel()
	<-tracked
	if !slices.Equal(*commits, []int64{0, 2, 4}) {
		t.Fatalf("commits %v, want [0 2 4]", *commits)
	}
	for id, n := range dones {
		if n != 1 {
			t.Errorf("done of delivery %s called %d times", id, n)
		}
	}
	if len(dones) != 9 {
		t.Errorf("done called for %d deliveries, want the 6 first and 3 again: %v", len(dones), dones)
	}
}
