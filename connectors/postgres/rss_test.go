package postgres_test

import (
	"fmt"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	connector "github.com/tributary/tributary/connectors/postgres"
)

// resetPeakRSS starts a new peak resident set measure (Linux), from a
// heap whose free pages went back to the system. With
// TRIBUTARY_BENCH_HEAPPROFILE set, the live heap is also written there
// two seconds later, once per process: what a catch-up holds.
func resetPeakRSS() {
	// What the load before it allocated and freed is returned first: the
	// peak is the catch-up's, from a process as small as it can be.
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	if os.Getenv("TRIBUTARY_BENCH_RSSLOG") != "" {
		fmt.Fprintf(os.Stderr, "rss at reset %.1f MB\n", rss())
		rssLogOnce.Do(func() {
			go func() {
				top := 0.0
				for range time.Tick(50 * time.Millisecond) {
					if r := rss(); r > top+5 {
						top = r
						var ms goruntime.MemStats
						goruntime.ReadMemStats(&ms)
						fmt.Fprintf(os.Stderr, "rss %.0f MB (anon %.0f, file %.0f, shmem %.0f): go sys %d heap inuse %d idle %d released %d stack %d other %d MB\n", r, procStatus("RssAnon:"), procStatus("RssFile:"), procStatus("RssShmem:"),
							ms.Sys>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackSys>>20, (ms.OtherSys+ms.GCSys+ms.MSpanSys)>>20)
					}
				}
			}()
		})
	}
	if p := os.Getenv("TRIBUTARY_BENCH_HEAPPROFILE"); p != "" {
		heapOnce.Do(func() {
			time.AfterFunc(2*time.Second, func() {
				f, err := os.Create(p)
				if err != nil {
					return
				}
				defer f.Close()
				goruntime.GC()
				_ = pprof.WriteHeapProfile(f)
			})
		})
	}
}

var heapOnce, rssLogOnce sync.Once

// peakRSS returns the peak resident set since the last reset, in MB, or -1
// where /proc does not tell.
func peakRSS() float64 { return procStatus("VmHWM:") }

// rss returns the current resident set, in MB.
func rss() float64 { return procStatus("VmRSS:") }

func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field)), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

// benchInFlight is the connector's max_in_flight in the runtime
// benchmarks: TRIBUTARY_BENCH_INFLIGHT, default (unset or 0) the one the
// sidecar gives a postgres_cdc entry without max_in_flight,
// connector.MaxInFlight.
func benchInFlight() int {
	if n, _ := strconv.Atoi(os.Getenv("TRIBUTARY_BENCH_INFLIGHT")); n > 0 {
		return n
	}
	return connector.MaxInFlight
}

// benchMaxBatch sets the connector's max_batch in the runtime benchmarks
// to TRIBUTARY_BENCH_MAXBATCH when it is set.
func benchMaxBatch(cfg map[string]any) map[string]any {
	if n, _ := strconv.Atoi(os.Getenv("TRIBUTARY_BENCH_MAXBATCH")); n > 0 {
		cfg["max_batch"] = n
	}
	return cfg
}
