package core

import (
	"strconv"
	"testing"
)

func trackPos(i int) Position { return Position{Version: 1, Data: []byte(strconv.Itoa(i))} }

// TestTrackerWatermark checks that out-of-order completions, one at a time
// and in batches, move the watermark only over a complete prefix.
func TestTrackerWatermark(t *testing.T) {
	tr := NewTracker()
	var chs []Change
	for i := range 6 {
		chs = append(chs, Change{Position: trackPos(i)})
	}
	if first := tr.AddChanges(chs[:4]); first != 0 {
		t.Fatalf("first sequence %d, want 0", first)
	}
	if seq := tr.Add(chs[4].Position); seq != 4 {
		t.Fatalf("Add after AddChanges gave %d, want 4", seq)
	}
	if first := tr.AddChanges(chs[5:]); first != 5 {
		t.Fatalf("second AddChanges gave %d, want 5", first)
	}
	if _, ok := tr.DoneAll([]uint64{1, 3}); ok {
		t.Fatal("watermark moved with change 0 pending")
	}
	if _, ok := tr.Watermark(); ok {
		t.Fatal("watermark set before any prefix completed")
	}
	pos, ok := tr.Done(0)
	if !ok || string(pos.Data) != "1" {
		t.Fatalf("after 0: watermark %q %v, want 1", pos.Data, ok)
	}
	pos, ok = tr.DoneAll([]uint64{2, 5, 2, 99})
	if !ok || string(pos.Data) != "3" {
		t.Fatalf("after 2 and 5: watermark %q %v, want 3", pos.Data, ok)
	}
	if n := tr.Pending(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	if _, ok := tr.DoneAll([]uint64{0, 1}); ok {
		t.Fatal("completing changes below the watermark moved it")
	}
	pos, ok = tr.Done(4)
	if !ok || string(pos.Data) != "5" || tr.Pending() != 0 {
		t.Fatalf("after 4: watermark %q %v, pending %d; want 5, 0", pos.Data, ok, tr.Pending())
	}
}

// TestTrackerCompacts checks that the pending list is compacted as the
// watermark moves and sequence numbers stay consistent after it.
func TestTrackerCompacts(t *testing.T) {
	tr := NewTracker()
	chs := make([]Change, 3000)
	for i := range chs {
		chs[i].Position = trackPos(i)
	}
	first := tr.AddChanges(chs)
	seqs := make([]uint64, 0, 2000)
	for i := range 2000 {
		seqs = append(seqs, first+uint64(i))
	}
	pos, ok := tr.DoneAll(seqs)
	if !ok || string(pos.Data) != "1999" {
		t.Fatalf("watermark %q %v, want 1999", pos.Data, ok)
	}
	if next := tr.Add(trackPos(3000)); next != 3000 {
		t.Fatalf("next sequence %d, want 3000", next)
	}
	for i := 2000; i <= 3000; i++ {
		pos, ok = tr.Done(uint64(i))
	}
	if !ok || string(pos.Data) != "3000" || tr.Pending() != 0 {
		t.Fatalf("watermark %q %v, pending %d", pos.Data, ok, tr.Pending())
	}
}
