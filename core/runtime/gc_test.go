package runtime_test

import (
	"math"
	goruntime "runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/tributary/tributary/core/runtime"
)

// currentLimit reads the Go runtime's memory limit without changing it.
func currentLimit() int64 { return debug.SetMemoryLimit(-1) }

func TestLimitMemory(t *testing.T) {
	before := currentLimit()
	tests := []struct {
		name     string
		limit    int64
		env      string // GOMEMLIMIT, when set
		want     int64  // the limit in force while the limiter runs
		wantNone bool   // the limiter does nothing
	}{
		{name: "default", limit: 0, want: runtime.DefaultMemoryLimit},
		{name: "set", limit: 100 << 20, want: 100 << 20},
		{name: "off", limit: -1, want: before, wantNone: true},
		{name: "GOMEMLIMIT decides", limit: 100 << 20, env: "200MiB", want: before, wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("GOMEMLIMIT", tt.env)
			}
			m := runtime.LimitMemory(tt.limit)
			defer m.Stop()
			if got := currentLimit(); got != tt.want {
				t.Fatalf("memory limit = %d, want %d", got, tt.want)
			}
			if got := m.Limit(); (got == 0) != tt.wantNone {
				t.Fatalf("Limit() = %d; want 0 only for a limiter that does nothing", got)
			}
			m.Stop()
			m.Stop()
			if got := currentLimit(); got != before {
				t.Fatalf("after Stop the memory limit is %d, want %d as before", got, before)
			}
		})
	}
}

// TestLimitMemoryFollowsLiveHeap: a live heap larger than half the limit
// raises it, so that the collector does not run back to back, and the
// limit comes down again once the heap is garbage.
func TestLimitMemoryFollowsLiveHeap(t *testing.T) {
	const base = 32 << 20
	m := runtime.LimitMemory(base)
	defer m.Stop()
	if got := m.Limit(); got != base {
		t.Fatalf("Limit() = %d, want %d", got, base)
	}
	live := make([][]byte, 64)
	for i := range live {
		live[i] = make([]byte, 1<<20) // 64 MiB in all
	}
	raised := waitLimit(t, m, func(l int64) bool { return l >= 2*64<<20 })
	if got := currentLimit(); got != raised {
		t.Fatalf("the runtime's limit is %d, the limiter says %d", got, raised)
	}
	goruntime.KeepAlive(live)
	live = nil
	waitLimit(t, m, func(l int64) bool { return l == base })
	if got := currentLimit(); got != base {
		t.Fatalf("with the heap collected the runtime's limit is %d, want %d", got, base)
	}
}

// waitLimit collects garbage until ok accepts the limiter's limit, and
// returns that limit; it fails the test after a few seconds.
func waitLimit(t *testing.T, m *runtime.MemoryLimiter, ok func(int64) bool) int64 {
	t.Helper()
	last := int64(math.MinInt64)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		goruntime.GC()
		time.Sleep(10 * time.Millisecond) // the cleanup runs after the collection
		if last = m.Limit(); ok(last) {
			return last
		}
	}
	t.Fatalf("the limit stayed at %d MiB", last>>20)
	return 0
}
