package lifecycle_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
)

// The benchmarks share one tracker following liveEntities orders, built
// once per process through Write and Step as the stream would feed it:
//
//	go test ./core/lifecycle -run '^$' -bench . -benchtime 200000x -timeout 30m
const liveEntities = 1_000_000

var (
	bigDir     string
	bigOnce    sync.Once
	bigTracker *lifecycle.Tracker
	bigClock   *clock
	bigSetup   struct {
		eventsPerSec    float64
		eventsPerCPUSec float64
		rssPerEntity    float64
		heapPerEntity   float64
		err             error
	}
)

// cpu returns the CPU time the process used so far (user and system,
// every thread): on a shared machine, events per CPU second tell what one
// core follows better than events per second of the wall clock.
func cpu() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss returns the process's resident set size in bytes.
func rss() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// feed writes ds in batches of 512, as the runtime does, and judges each
// batch after its window.
func feed(ctx context.Context, tr *lifecycle.Tracker, clk *clock, ds []core.Delivery) error {
	for len(ds) > 0 {
		n := min(512, len(ds))
		for i, r := range tr.Write(ctx, ds[:n]) {
			if r.Status != core.StatusDelivered {
				return fmt.Errorf("delivery %d: %s %v", i, r.Status, r.Err)
			}
		}
		clk.add(3 * time.Second)
		if err := tr.Step(ctx); err != nil {
			return err
		}
		ds = ds[n:]
	}
	return nil
}

func orderID(i int) string { return "A-" + strconv.Itoa(i) }

func accepted(i int, at time.Time) core.Delivery {
	id := orderID(i)
	return core.Delivery{Event: &core.Event{ID: "acc-" + id, Type: "com.acme.order.accepted", Subject: id, PartitionKey: id, Source: "/tributary/erp", Time: at, SpecVersion: "1.0"}, Position: "t/0/" + strconv.Itoa(i)}
}

func bigSetupOnce(b *testing.B) {
	bigOnce.Do(func() {
		runtime.GC()
		before := rss()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		heapBefore := float64(ms0.HeapInuse)
		bigClock = &clock{t: base}
		dir, err := os.MkdirTemp("", "lifecycle-bench-")
		if err != nil {
			bigSetup.err = err
			return
		}
		bigDir = dir
		bigTracker = lifecycle.New(lifecycle.Config{Machines: machines(b), Dir: dir, Now: bigClock.now, Tick: time.Hour})
		ctx := context.Background()
		if err := bigTracker.Open(ctx, core.Env{}); err != nil {
			bigSetup.err = err
			return
		}
		start, startCPU := time.Now(), cpu()
		const chunk = 50_000
		for lo := 0; lo < liveEntities; lo += chunk {
			ds := make([]core.Delivery, 0, chunk)
			for i := lo; i < lo+chunk; i++ {
				ds = append(ds, accepted(i, base))
			}
			if err := feed(ctx, bigTracker, bigClock, ds); err != nil {
				bigSetup.err = err
				return
			}
		}
		bigSetup.eventsPerSec = liveEntities / time.Since(start).Seconds()
		bigSetup.eventsPerCPUSec = liveEntities / (cpu() - startCPU).Seconds()
		runtime.GC()
		bigSetup.rssPerEntity = (rss() - before) / liveEntities
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		bigSetup.heapPerEntity = (float64(ms.HeapInuse) - heapBefore) / liveEntities
	})
	if bigSetup.err != nil {
		b.Fatal(bigSetup.err)
	}
}

// BenchmarkFollow: events/s the tracker follows (each one moving a
// random one of 1M live orders), on one goroutine, store included; and
// the same per second of CPU time the whole process used meanwhile
// (snapshots and the garbage collector included), which a busy machine
// disturbs less. Then how long a start-up takes (the snapshot and the
// log after it) and a snapshot of the 1M.
func BenchmarkFollow(b *testing.B) {
	bigSetupOnce(b)
	ds := make([]core.Delivery, b.N)
	// Billed now, so that none stays billed past its limit during the
	// run: the benchmark measures following, not reporting stuck orders.
	at := bigClock.now()
	for i := range ds {
		id := orderID(rand.IntN(liveEntities))
		ds[i] = core.Delivery{Event: &core.Event{ID: fmt.Sprintf("bill-%d-%d", b.N, i), Type: "com.acme.order.billed", Subject: id, PartitionKey: id, Source: "/tributary/billing", Time: at, SpecVersion: "1.0"}, Position: "t/1/" + strconv.Itoa(i)}
	}
	b.ResetTimer()
	start, startCPU := time.Now(), cpu()
	if err := feed(context.Background(), bigTracker, bigClock, ds); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/(cpu()-startCPU).Seconds(), "events/cpu-s")
	b.StopTimer()
	// A start-up: the snapshot the setup's last step wrote, then the
	// log after it (the events above); then a snapshot of the 1M.
	ctx := context.Background()
	if err := bigTracker.Close(ctx); err != nil {
		b.Fatal(err)
	}
	start, startCPU = time.Now(), cpu()
	if err := bigTracker.Open(ctx, core.Env{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "reopen-s")
	b.ReportMetric((cpu() - startCPU).Seconds(), "reopen-cpu-s")
	start, startCPU = time.Now(), cpu()
	if err := bigTracker.Snapshot(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "snapshot-s")
	b.ReportMetric((cpu() - startCPU).Seconds(), "snapshot-cpu-s")
	// ResetTimer drops reported metrics: these come last.
	b.ReportMetric(bigSetup.eventsPerSec, "create-events/s")
	b.ReportMetric(bigSetup.eventsPerCPUSec, "create-events/cpu-s")
	b.ReportMetric(bigSetup.rssPerEntity, "rss-B/entity")
	b.ReportMetric(bigSetup.heapPerEntity, "heap-B/entity")
}

// BenchmarkTrace: `trace` of a random one of 1M live orders.
func BenchmarkTrace(b *testing.B) {
	bigSetupOnce(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		in, err := bigTracker.Trace(ctx, "order", orderID(rand.IntN(liveEntities)))
		if err != nil || len(in.Timeline) == 0 {
			b.Fatal(in, err)
		}
	}
}

// TestMain removes the benchmarks' store once they are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if bigTracker != nil {
		bigTracker.Close(context.Background())
	}
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

var (
	tailOnce sync.Once
	tailErr  error
)

// BenchmarkTraceFiles: `tributary trace` of a random one of 1M live
// orders beside the running tracker, from the files alone: a bucket of
// the latest snapshot, then the whole log after it, which 200,000 new
// orders make as long as a fifth of the snapshot interval.
func BenchmarkTraceFiles(b *testing.B) {
	bigSetupOnce(b)
	ctx := context.Background()
	tailOnce.Do(func() {
		if tailErr = bigTracker.Snapshot(ctx); tailErr != nil {
			return
		}
		ds := make([]core.Delivery, 0, 200_000)
		for i := liveEntities; i < liveEntities+200_000; i++ {
			ds = append(ds, accepted(i, base))
		}
		tailErr = feed(ctx, bigTracker, bigClock, ds)
	})
	if tailErr != nil {
		b.Fatal(tailErr)
	}
	st, err := lifecycle.OpenStoreReadOnly(ctx, filepath.Join(bigDir, lifecycle.StoreFile))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// A trace reads the whole log after the snapshot: at most 300 of
	// them, whatever -benchtime says, timed into ns/op.
	n := min(b.N, 300)
	b.ResetTimer()
	start := time.Now()
	for range n {
		in, err := st.Trace(ctx, "order", orderID(rand.IntN(liveEntities)))
		if err != nil || len(in.Timeline) == 0 {
			b.Fatal(in, err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/op")
}
