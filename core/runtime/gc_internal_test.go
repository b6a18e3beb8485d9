package runtime

import "testing"

func TestTighten(t *testing.T) {
	tests := []struct {
		tight bool
		cores float64
		want  bool
	}{
		{false, 0, true},
		{false, gcCheap / 2, true},
		{false, (gcCheap + gcDear) / 2, false}, // between the two: as it was
		{true, (gcCheap + gcDear) / 2, true},
		{true, gcDear * 2, false},
		{false, gcDear * 2, false},
	}
	for _, tt := range tests {
		if got := tighten(tt.tight, tt.cores); got != tt.want {
			t.Errorf("tighten(%v, %.3f cores) = %v, want %v", tt.tight, tt.cores, got, tt.want)
		}
	}
}

func TestLimitFor(t *testing.T) {
	const base = 64 << 20
	tests := []struct {
		name          string
		live, outside uint64
		tight         bool
		want          int64
	}{
		{name: "small heap, loose", live: 8 << 20, outside: 12 << 20, want: base},
		{name: "small heap, tight", live: 8 << 20, outside: 12 << 20, tight: true, want: 28 << 20},
		{name: "large heap, loose", live: 40 << 20, outside: 12 << 20, want: 92 << 20},
		{name: "large heap, tight", live: 40 << 20, outside: 12 << 20, tight: true, want: 92 << 20},
	}
	for _, tt := range tests {
		if got := limitFor(base, tt.live, tt.outside, tt.tight); got != tt.want {
			t.Errorf("%s: limitFor = %d MiB, want %d MiB", tt.name, got>>20, tt.want>>20)
		}
	}
}
