package lifecycle

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestTableAgainstMap adds, finds, relabels and removes instances at
// random, and checks the table against a map doing the same, through
// growths of the index, reuse of freed slots and compactions of the
// arena.
func TestTableAgainstMap(t *testing.T) {
	tests := []struct {
		name  string
		keys  int
		ops   int
		seeds uint64
	}{
		{name: "few keys, many removals", keys: 300, ops: 50_000, seeds: 1},
		{name: "many keys", keys: 40_000, ops: 200_000, seeds: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(tt.seeds, 7))
			tb := newTable()
			tb.compactAt = 64 << 10
			type key struct {
				mach uint16
				id   string
			}
			want := map[key]string{}
			for op := range tt.ops {
				k := key{uint16(rng.IntN(2)), "A-" + strconv.Itoa(rng.IntN(tt.keys))}
				i, ok := tb.find(k.mach, k.id)
				last, had := want[k]
				if ok != had {
					t.Fatalf("op %d: find %v = %v, want %v", op, k, ok, had)
				}
				switch {
				case !ok:
					i = tb.add(k.mach, k.id)
					want[k] = ""
				case rng.IntN(3) == 0:
					tb.remove(i)
					delete(want, k)
					continue
				default:
					if id, got := tb.record(tb.slot(i).ref); id != k.id || got != last {
						t.Fatalf("op %d: record of %v = %q %q, want %q", op, k, id, got, last)
					}
				}
				// Last event ids of one length (rewritten in place) and of
				// others (appended, the old record left as garbage).
				l := "ev-" + strings.Repeat("x", rng.IntN(3)) + strconv.Itoa(op)
				tb.setLast(i, l)
				want[k] = l
			}
			if tb.n != len(want) {
				t.Fatalf("table holds %d instances, want %d", tb.n, len(want))
			}
			seen := 0
			tb.eachSlot(func(i uint32, s *slot) {
				id, last := tb.record(s.ref)
				if w, ok := want[key{s.mach, id}]; !ok || w != last {
					t.Errorf("slot %d: %d %q last %q, want %q (present %v)", i, s.mach, id, last, w, ok)
				}
				seen++
			})
			if seen != len(want) {
				t.Errorf("eachSlot saw %d, want %d", seen, len(want))
			}
			if tb.compactions == 0 {
				t.Error("the arena was never compacted: the test does not cover it")
			}
		})
	}
}
