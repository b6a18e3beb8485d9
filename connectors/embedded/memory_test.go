//go:build linux && !race

// The race detector maps shadow memory beside the Go heap, which would be
// counted here as memory outside it: this measure needs a plain build.

package embedded_test

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
)

// outsideGoMB returns the resident anonymous memory of the process that
// the Go runtime does not account for, in MB: SQLite's page caches and
// everything else modernc.org/libc allocates. Go's share is taken at its
// largest (every mapped, unreleased byte counted as resident), so the
// result is a lower bound.
func outsideGoMB(t *testing.T) float64 {
	t.Helper()
	runtime.GC()
	f, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("read /proc/self/status: %v", err)
	}
	anon := -1.0
	sc := bufio.NewScanner(bytes.NewReader(f))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("RssAnon:")); ok {
			kb, err := strconv.ParseFloat(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 64)
			if err != nil {
				t.Fatalf("parse RssAnon in /proc/self/status: %v", err)
			}
			anon = kb / 1024
		}
	}
	if anon < 0 {
		t.Fatal("no RssAnon line in /proc/self/status (Linux 4.5 or later has it)")
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	goMB := float64(s[0].Value.Uint64()-s[1].Value.Uint64()) / (1 << 20)
	return anon - goMB
}

// TestWriterMemoryBounded writes a stream larger than the writer's page
// cache and checks what that cache costs in resident memory outside the
// Go heap. Every cached 4 KiB page (plus SQLite's header) takes an 8 KiB
// slot of the libc allocator, so the cache costs about twice its nominal
// size.
func TestWriterMemoryBounded(t *testing.T) {
	// The 4 MiB cache of before held 9.6-9.9 MB outside the Go heap here
	// (and a 16 MiB cache of 16 KiB pages 70 MB on a 1M-row catch-up);
	// 2 MiB holds about 6 MB. The reader connections and the allocator's
	// retained regions take the rest of the budget.
	const budgetMB = 8
	before := outsideGoMB(t)
	s := openStream(t, t.TempDir(), map[string]any{"compression": "none"})
	pub := s.Publisher()
	msgs := benchMessages(512)
	// 48 MiB of messages: the database outgrows any cache many times.
	for range 96 {
		if err := pub.Publish("memory", msgs...); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	grown := outsideGoMB(t) - before
	t.Logf("memory outside the Go heap grew by %.1f MB", grown)
	if grown > budgetMB {
		t.Errorf("writing 48 MiB into the stream grew the memory outside the Go heap by %.1f MB, over the %d MB budget: the writer's page cache (openOptions in store.go) costs about twice its cache_size in libc slots", grown, budgetMB)
	}
}
