package runtime

import (
	"os"
	goruntime "runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// GCPercent is the garbage collector's target `tributary run` applies
// unless GOGC is set. The sidecar's live heap is small (batches in flight,
// rule programs, connector state) while it allocates quickly per event, so
// collecting at three times the live heap rather than Go's default two
// spends noticeably less CPU per event (cursor polling into the embedded
// stream: 89k–111k rows/s at 100, 101k–113k at 200) while a snapshot diff
// of a million keys stays well under 300 MB (231 MB; 319 MB at 400).
const GCPercent = 200

// TuneGC applies GCPercent unless the environment sets GOGC. Benchmarks of
// the sidecar's pipelines call it to measure what the sidecar runs.
func TuneGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(GCPercent)
	}
}

// DefaultMemoryLimit is the soft limit on the Go runtime's memory that
// `tributary run` applies when the memory section sets none (see
// LimitMemory). With GCPercent alone a burst (a stream that falls behind,
// thousands of changes in flight) grows the heap to three times what was
// live at its height and RSS keeps that peak: the webhook benchmark on
// Kafka peaked at 118-211 MB, 97-99 MB under this limit. A tighter one
// costs more collector CPU than it saves memory: at 32MiB, collection took
// 2-4 times the CPU per delivery of Kafka's webhook sidecar, for 10 MB.
const DefaultMemoryLimit = 64 << 20

// MemoryLimiter is a soft memory limit applied to the process: the Go
// runtime's limit (debug.SetMemoryLimit), raised while the live heap needs
// more (see LimitMemory). Stop ends it.
type MemoryLimiter struct {
	base     int64
	previous int64

	mu      sync.Mutex
	stopped bool
	applied int64
	samples []metrics.Sample
	// headroom is the heap the limit allows beyond the live heap, as a
	// multiple of the live heap, between minHeadroom and maxHeadroom (see
	// gcTarget). gcCPU is the collector's CPU seconds read at since, when
	// the window over which its cost is measured began.
	headroom float64
	gcCPU    float64
	since    time.Time
}

// The collector's cost decides how much memory the limiter lets the heap
// take below the limit. After each window of gcWindow or more, the heap's
// headroom over the live heap is scaled so that collection would have
// taken gcTarget of one core (its own work: assists, dedicated workers and
// pauses, not the idle workers that soak up cores nothing else wants): a
// collection marks the live heap, so its cost per second goes as the
// allocation rate over the headroom. The headroom stays between the live
// heap once over (twice the live heap in all, as GOGC=100 would hold it)
// and twice over (GCPercent's target, the limit itself).
//
// Under a modest load collection costs little and a tighter heap saves a
// third of it: at 5k webhook deliveries a second the 512 open
// connections' buffers are most of the live heap, and the collector took
// 0.5-3% of a core held to twice it. Under a heavy load (30k deliveries a
// second) it took 4.4-6.2% held that tight, and GCPercent is worth its
// memory. A switch between the two alone (tight under 2%, loose over 4%)
// flipped back and forth at 5k deliveries a second on a slower machine,
// each loose spell growing the heap by 20 MB for a second.
const (
	gcTarget    = 0.03
	gcWindow    = time.Second
	minHeadroom = 1.0
	maxHeadroom = GCPercent / 100.0
)

// LimitMemory sets the Go runtime's soft memory limit (heap, stacks and
// the runtime's own structures; not the binary's mapped code, nor memory
// C code allocates, such as SQLite's page caches) to limit bytes: 0 means
// DefaultMemoryLimit, a negative limit none. It does nothing when the
// environment sets GOMEMLIMIT, which then decides, nor when limit is
// negative; the returned limiter's Stop is then harmless too.
//
// The limit is soft in one more way than Go's own: after each garbage
// collection, when twice the live heap (plus the runtime's memory outside
// the heap) is more than limit, the limit rises to that, and it comes back
// down once the live heap shrinks again. A sidecar whose work needs a large
// heap (a snapshot diff of a million keys) then collects as often as with
// GOGC=100 rather than without a pause, while a small live heap stays
// under limit. And it is firmer while collection is cheap: then the limit
// holds the heap down to twice the live heap, below limit (see gcTarget).
func LimitMemory(limit int64) *MemoryLimiter {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok || limit < 0 {
		return &MemoryLimiter{stopped: true}
	}
	if limit == 0 {
		limit = DefaultMemoryLimit
	}
	m := &MemoryLimiter{
		base: limit,
		samples: []metrics.Sample{
			{Name: "/gc/heap/live:bytes"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/memory/classes/heap/free:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
			{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
			{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
			{Name: "/cpu/classes/gc/pause:cpu-seconds"},
		},
		since:    time.Now(),
		headroom: minHeadroom,
	}
	metrics.Read(m.samples)
	m.gcCPU = m.collectorCPU()
	m.previous = debug.SetMemoryLimit(limit)
	m.applied = limit
	m.arm()
	return m
}

// Limit returns the limit in force: the base limit, or what the live heap
// raised it to. It is 0 for a limiter that does nothing.
func (m *MemoryLimiter) Limit() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return 0
	}
	return m.applied
}

// Stop restores the memory limit that was in force before LimitMemory. It
// is safe to call twice.
func (m *MemoryLimiter) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	debug.SetMemoryLimit(m.previous)
}

// gcSentinel is garbage from the moment it is made: its cleanup runs after
// the next collection. It holds a pointer so that it is never one of the
// tiny objects the allocator packs together, whose cleanups may not run.
type gcSentinel struct {
	_ *byte
	_ [8]byte
}

// arm has afterGC run once the next collection ends.
func (m *MemoryLimiter) arm() {
	goruntime.AddCleanup(new(gcSentinel), (*MemoryLimiter).afterGC, m)
}

// afterGC sets the limit from the live heap the last collection measured,
// then waits for the next one. It runs on the runtime's cleanup goroutine.
func (m *MemoryLimiter) afterGC() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	metrics.Read(m.samples)
	live := m.samples[0].Value.Uint64()
	heap := m.samples[2].Value.Uint64() + m.samples[3].Value.Uint64() + m.samples[4].Value.Uint64() + m.samples[5].Value.Uint64()
	outside := m.samples[1].Value.Uint64() - min(heap, m.samples[1].Value.Uint64())
	gc := m.collectorCPU()
	if now := time.Now(); now.Sub(m.since) >= gcWindow {
		m.headroom = nextHeadroom(m.headroom, (gc-m.gcCPU)/now.Sub(m.since).Seconds())
		m.gcCPU, m.since = gc, now
	}
	want := limitFor(m.base, live, outside, m.headroom)
	// A change under a sixteenth is not worth the runtime's pacer
	// recomputing its goal.
	if d := want - m.applied; d > m.applied/16 || -d > m.applied/16 || (want == m.base && m.applied != m.base) {
		debug.SetMemoryLimit(want)
		m.applied = want
	}
	m.arm()
}

// collectorCPU is the CPU seconds the collector's own work took since the
// program started, from the samples last read: its assists, its
// dedicated workers and its pauses.
func (m *MemoryLimiter) collectorCPU() float64 {
	return m.samples[6].Value.Float64() + m.samples[7].Value.Float64() + m.samples[8].Value.Float64()
}

// nextHeadroom is the heap's headroom over the live heap for the next
// window, given the headroom of the last one and the cores the collector
// took over it: scaled toward gcTarget, within minHeadroom and
// maxHeadroom.
func nextHeadroom(headroom, cores float64) float64 {
	return min(maxHeadroom, max(minHeadroom, headroom*cores/gcTarget))
}

// limitFor is the memory limit for a live heap of live bytes with outside
// bytes of the runtime's memory outside the heap and a headroom (a
// multiple of live) beyond it: base or less; at maxHeadroom, base; and
// never less than what twice the live heap needs.
func limitFor(base int64, live, outside uint64, headroom float64) int64 {
	need := int64(2*live + outside)
	if headroom >= maxHeadroom {
		return max(base, need)
	}
	return max(need, min(base, int64(float64(live)*(1+headroom))+int64(outside)))
}
