package core_test

import (
	"context"
	"slices"
	"testing"

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
