package mysql

import (
	"context"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

// TestQueueTakesAtMostMax: the changes of one rows event go into the
// queue together, past max if need be, and a take still hands at most max
// (max_batch) to the runtime, in order, the rest at the next.
func TestQueueTakesAtMostMax(t *testing.T) {
	changes := func(from, n int) []core.Change {
		out := make([]core.Change, n)
		for i := range out {
			out[i] = core.Change{Op: core.OpCreate, Position: cdc.StreamPosition("t", from+i)}
		}
		return out
	}
	tests := []struct {
		name   string
		max    int
		pushes []int // sizes of the events pushed, in order
		takes  []int // sizes of the takes that follow
	}{
		{name: "one event past max", max: 3, pushes: []int{5}, takes: []int{3, 2}},
		{name: "events within max", max: 4, pushes: []int{1, 2}, takes: []int{3}},
		{name: "two events, the second past max", max: 3, pushes: []int{2, 4}, takes: []int{3, 3}},
		{name: "one change at a time", max: 1, pushes: []int{1}, takes: []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(tc.max)
			next := 0
			for _, n := range tc.pushes {
				if err := q.pushAll(changes(next, n)); err != nil {
					t.Fatal(err)
				}
				next += n
			}
			want := changes(0, next)
			for i, n := range tc.takes {
				got, err := q.take(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n {
					t.Fatalf("take %d: %d changes, want %d", i+1, len(got), n)
				}
				for j := range got {
					if g, w := got[j].Position.String(), want[j].Position.String(); g != w {
						t.Fatalf("take %d, change %d: position %s, want %s", i+1, j, g, w)
					}
				}
				want = want[n:]
			}
		})
	}
}

// TestQueueRoomForEventPastMax: after a take, the queue has room for as
// many changes as it handed out and for the largest event pushed past
// max, so that the next events go in without the queue growing (a copy
// of every change waiting, and a larger array handed to the runtime).
func TestQueueRoomForEventPastMax(t *testing.T) {
	q := newQueue(4)
	push := func(n int) {
		t.Helper()
		if err := q.pushAll(make([]core.Change, n)); err != nil {
			t.Fatal(err)
		}
	}
	push(3)
	push(3) // 6: past max by an event of 3
	if got, err := q.take(context.Background()); err != nil || len(got) != 4 {
		t.Fatalf("take: %d changes, %v; want 4", len(got), err)
	}
	before := &q.items[:1][0]
	push(1) // 3
	push(3) // 6 again
	if after := &q.items[:1][0]; after != before {
		t.Errorf("the queue grew: capacity %d for %d changes", cap(q.items), len(q.items))
	}
}
