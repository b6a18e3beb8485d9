package runtime_test

import (
	"math"
	goruntime "runtime"
	"runtime/debug"
	"sync"
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
	// Back to base, or below it when collection has been cheap over the
	// last second (TestLimitMemoryHoldsHeapWhileCollectionIsCheap).
	down := waitLimit(t, m, func(l int64) bool { return l <= base })
	if got := currentLimit(); got != down {
		t.Fatalf("with the heap collected the runtime's limit is %d, the limiter says %d", got, down)
	}
}

// TestLimitMemoryHoldsHeapWhileCollectionIsCheap: while the collector
// takes little CPU, the limit holds the heap to twice the live heap,
// below the base; once collection keeps a core busy, the limit is the
// base again.
func TestLimitMemoryHoldsHeapWhileCollectionIsCheap(t *testing.T) {
	const base = 512 << 20
	m := runtime.LimitMemory(base)
	defer m.Stop()
	live := make([]byte, 16<<20)
	for i := range live {
		live[i] = byte(i)
	}
	time.Sleep(1100 * time.Millisecond) // a window with next to no collection
	tight := waitLimit(t, m, func(l int64) bool { return l < base })
	if tight < 2*16<<20 || tight > 128<<20 {
		t.Fatalf("held tight, the limit is %d MiB; want at least twice the 16 MiB live heap and well under the %d MiB base", tight>>20, base>>20)
	}
	if got := currentLimit(); got != tight {
		t.Fatalf("the runtime's limit is %d, the limiter says %d", got, tight)
	}
	// Every core allocating garbage over a large heap of pointers, for
	// more than a window: the collector marks the heap again and again,
	// in the allocators' assists and its dedicated workers (busy cores
	// leave its idle workers nothing), and collection is dear.
	nodes := make([]*[4]*int, 1<<20)
	for i := range nodes {
		nodes[i] = &[4]*int{new(int)}
	}
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range goruntime.GOMAXPROCS(0) {
		wg.Go(func() {
			var ring [256]*[4]*int
			for i := 0; time.Now().Before(deadline); i++ {
				ring[i%len(ring)] = &[4]*int{new(int)}
			}
			goruntime.KeepAlive(ring)
		})
	}
	wg.Wait()
	waitLimit(t, m, func(l int64) bool { return l == base })
	goruntime.KeepAlive(live)
	goruntime.KeepAlive(nodes)
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
