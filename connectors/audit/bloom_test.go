package audit

import (
	"fmt"
	"testing"
)

// A filter holds every id added to it, keeps its bits across bytes and
// bloomFromBytes, and holds few others (about 0.3% at 14 bits an id).
func TestBloom(t *testing.T) {
	for _, n := range []int{1, 100, 100000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newBloom(n)
			for i := range n {
				f.add(idHash(fmt.Sprintf("id-%d", i)))
			}
			g := bloomFromBytes(f.bytes())
			if g == nil {
				t.Fatal("bloomFromBytes refused the bits of a filter")
			}
			for i := range n {
				if h := idHash(fmt.Sprintf("id-%d", i)); !f.has(h) || !g.has(h) {
					t.Fatalf("id-%d added but not held", i)
				}
			}
			held := 0
			const tries = 200000
			for i := range tries {
				if g.has(idHash(fmt.Sprintf("other-%d", i))) {
					held++
				}
			}
			rate := float64(held) / tries
			t.Logf("%d ids: %.3f%% of others held", n, rate*100)
			if rate > 0.01 {
				t.Errorf("%.3f%% of ids never added are held; want under 1%%", rate*100)
			}
		})
	}
	for _, b := range [][]byte{nil, make([]byte, 63)} {
		if bloomFromBytes(b) != nil {
			t.Errorf("bloomFromBytes(%d bytes) made a filter", len(b))
		}
	}
}
