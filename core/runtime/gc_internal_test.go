package runtime

import "testing"

func TestNextHeadroom(t *testing.T) {
	tests := []struct {
		name     string
		headroom float64
		cores    float64
		want     float64
	}{
		{"idle: held to twice the live heap", maxHeadroom, 0, minHeadroom},
		{"on target: kept", 1.5, gcTarget, 1.5},
		{"dear: widened in proportion", 1.2, gcTarget * 1.5, 1.8},
		{"cheap: narrowed in proportion", 2, gcTarget / 2, 1},
		{"dearer than the widest allows", 1.5, gcTarget * 10, maxHeadroom},
		{"tight and dear, a little", minHeadroom, gcTarget * 1.25, 1.25},
	}
	for _, tt := range tests {
		if got := nextHeadroom(tt.headroom, tt.cores); got < tt.want-1e-9 || got > tt.want+1e-9 {
			t.Errorf("%s: nextHeadroom(%.2f, %.3f cores) = %.3f, want %.3f", tt.name, tt.headroom, tt.cores, got, tt.want)
		}
	}
}

func TestLimitFor(t *testing.T) {
	const base = 64 << 20
	tests := []struct {
		name          string
		live, outside uint64
		headroom      float64
		want          int64
	}{
		{name: "small heap, widest", live: 8 << 20, outside: 12 << 20, headroom: maxHeadroom, want: base},
		{name: "small heap, tightest", live: 8 << 20, outside: 12 << 20, headroom: minHeadroom, want: 28 << 20},
		{name: "small heap, between", live: 8 << 20, outside: 12 << 20, headroom: 1.5, want: 32 << 20},
		{name: "headroom past base", live: 20 << 20, outside: 12 << 20, headroom: 1.9, want: base},
		{name: "large heap, widest", live: 40 << 20, outside: 12 << 20, headroom: maxHeadroom, want: 92 << 20},
		{name: "large heap, tightest", live: 40 << 20, outside: 12 << 20, headroom: minHeadroom, want: 92 << 20},
		{name: "large heap, between", live: 40 << 20, outside: 12 << 20, headroom: 1.5, want: 92 << 20},
	}
	for _, tt := range tests {
		if got := limitFor(base, tt.live, tt.outside, tt.headroom); got != tt.want {
			t.Errorf("%s: limitFor = %d MiB, want %d MiB", tt.name, got>>20, tt.want>>20)
		}
	}
}
