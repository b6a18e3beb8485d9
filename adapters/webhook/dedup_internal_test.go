package webhook

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDedupFilter(t *testing.T) {
	const n = 200_000
	f := newDedupFilter(n)
	for i := range n {
		d := digestOf("in-" + strconv.Itoa(i))
		f.add(&d)
	}
	for i := range n {
		if d := digestOf("in-" + strconv.Itoa(i)); !f.has(&d) {
			t.Fatalf("id %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if d := digestOf("out-" + strconv.Itoa(i)); f.has(&d) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Errorf("false positive rate = %.4f at %d bits an id, want at most 0.02", rate, filterBitsPerID)
	}
	if got, want := f.bytes(), n*filterBitsPerID/8; got > want+64 {
		t.Errorf("filter of %d ids = %d bytes, want about %d", n, got, want)
	}
}

// testDigests returns the digests of ids prefix0..prefix(n-1).
func testDigests(prefix string, n int) []digest {
	ds := make([]digest, n)
	for i := range ds {
		ds[i] = digestOf(prefix + strconv.Itoa(i))
	}
	return ds
}

func TestDedupRunFile(t *testing.T) {
	first, last := time.Unix(100, 0), time.Unix(200, 0)
	tests := []struct {
		name    string
		n       int
		corrupt func(t *testing.T, path string)
		wantErr error
	}{
		{name: "empty", n: 0},
		{name: "one block", n: runBlock},
		{name: "partial last block", n: 3*runBlock + 17},
		{name: "flipped digest byte", n: 1000, corrupt: flipByte(runHeader + 500), wantErr: errCorruptRun},
		{name: "flipped header byte", n: 1000, corrupt: flipByte(20), wantErr: errCorruptRun},
		{name: "torn", n: 1000, corrupt: func(t *testing.T, path string) {
			if err := os.Truncate(path, runHeader+400*16); err != nil {
				t.Fatal(err)
			}
		}, wantErr: errCorruptRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			in := testDigests("id-", tt.n)
			w, err := writeRun(dir, 7, append([]digest(nil), in...), first, last)
			if err != nil {
				t.Fatal(err)
			}
			w.f.Close()
			if tt.corrupt != nil {
				tt.corrupt(t, runPath(dir, 7))
			}
			r, err := loadRun(dir, 7)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("loadRun() error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer r.f.Close()
			if r.count != int64(tt.n) || !r.first.Equal(first) || !r.last.Equal(last) {
				t.Errorf("run = %d ids from %v to %v, want %d from %v to %v", r.count, r.first, r.last, tt.n, first, last)
			}
			buf := make([]byte, runBlock*16)
			for i, d := range in {
				if ok, err := r.has(&d, buf); !ok || err != nil {
					t.Fatalf("id %d: has = %v, %v; want true", i, ok, err)
				}
			}
			for i, d := range testDigests("other-", 2000) {
				if ok, err := r.has(&d, buf); ok || err != nil {
					t.Fatalf("other id %d: has = %v, %v; want false", i, ok, err)
				}
			}
		})
	}
}

func flipByte(off int64) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[off] ^= 0x40
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// testClock is a settable clock for the inbox.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) req(id string) *writeReq {
	r := newReq(id, []byte(`{}`))
	r.rec.received = c.now()
	return r
}

// commitAt commits ids received now by the clock, acknowledges them, and
// returns which were duplicates.
func commitAt(t *testing.T, ib *inbox, c *testClock, ids ...string) []bool {
	t.Helper()
	var batch []*writeReq
	for _, id := range ids {
		batch = append(batch, c.req(id))
	}
	ib.commitBatch(batch)
	ib.ack(ib.nextSeq)
	ib.maintain()
	dups := make([]bool, len(batch))
	for i, r := range batch {
		if r.err != nil {
			t.Fatalf("commit %q: %v", r.rec.id, r.err)
		}
		dups[i] = r.dup
	}
	return dups
}

// settle waits for a running seal and merges of dedup runs and installs
// them.
func settle(ib *inbox) {
	for range 3 {
		ib.dd.sealWG.Wait()
		ib.dd.mergeWG.Wait()
		ib.dedupUpkeep(ib.now())
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// TestInboxDedupRunsAcrossRestart seals ids into runs (4 ids in memory at
// most), acknowledges and compacts their segments, and restarts (after a
// clean close, or as after kill -9 with nothing closed): every id is still
// a duplicate, and some are held by runs alone.
func TestInboxDedupRunsAcrossRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			ctx := context.Background()
			dir, c := t.TempDir(), newTestClock()
			ib, _, err := openInboxLimit(ctx, dir, time.Hour, c.now, 4)
			if err != nil {
				t.Fatal(err)
			}
			ib.segmentBytes = 1 // a segment a commit, so that acked ones are compacted
			old := ids("old-", 40)
			for i := 0; i < len(old); i += 3 {
				c.add(time.Second)
				commitAt(t, ib, c, old[i:min(i+3, len(old))]...)
			}
			settle(ib)
			if len(ib.dd.runs) == 0 {
				t.Fatal("no dedup run written with 40 ids and 4 in memory")
			}
			if !crash {
				if err := ib.close(ctx); err != nil {
					t.Fatal(err)
				}
			}
			c.add(10 * time.Minute)
			ib2, _, err := openInboxLimit(ctx, dir, time.Hour, c.now, 4)
			if err != nil {
				t.Fatal(err)
			}
			defer ib2.close(ctx)
			onlyOnDisk := 0
			for _, id := range old {
				if _, ok := ib2.dd.hot[digestOf(id)]; !ok {
					onlyOnDisk++
				}
			}
			if onlyOnDisk == 0 {
				t.Fatalf("every old id is in memory after the restart (%d runs); the test proves nothing", len(ib2.dd.runs))
			}
			for i, dup := range commitAt(t, ib2, c, old...) {
				if !dup {
					t.Errorf("%q after a restart: accepted again, want duplicate", old[i])
				}
			}
			if dups := commitAt(t, ib2, c, "new"); dups[0] {
				t.Error(`"new" after a restart: duplicate, want accepted`)
			}
		})
	}
}

// TestInboxDedupForgetsBeyondWindow checks that ids are duplicates within
// the window and forgotten, their run files deleted, past it (at most a
// slot of the window and a sealing age later), also across a restart.
func TestInboxDedupForgetsBeyondWindow(t *testing.T) {
	ctx := context.Background()
	dir, c := t.TempDir(), newTestClock()
	const window = time.Hour
	ib, _, err := openInboxLimit(ctx, dir, window, c.now, 8)
	if err != nil {
		t.Fatal(err)
	}
	old := ids("old-", 30)
	for i := 0; i < len(old); i += 10 {
		commitAt(t, ib, c, old[i:i+10]...)
	}
	settle(ib)
	c.add(window - time.Minute)
	for i, dup := range commitAt(t, ib, c, old...) {
		if !dup {
			t.Fatalf("%q within the window: accepted, want duplicate", old[i])
		}
	}
	if err := ib.close(ctx); err != nil {
		t.Fatal(err)
	}
	c.add(window/windowSlots + ib.sealAge() + time.Minute)
	ib, _, err = openInboxLimit(ctx, dir, window, c.now, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	commitAt(t, ib, c, "tick")
	settle(ib)
	for i, dup := range commitAt(t, ib, c, old...) {
		if dup {
			t.Errorf("%q past the window: duplicate, want accepted", old[i])
		}
	}
	c.add(window + window/windowSlots + ib.sealAge() + time.Minute)
	commitAt(t, ib, c, "tick2")
	settle(ib)
	commitAt(t, ib, c, "tick3")
	runs, err := listRuns(ib.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range runs {
		r, err := loadRun(ib.dir, n)
		if err != nil {
			t.Fatal(err)
		}
		r.f.Close()
		if !r.last.Add(window).After(c.now()) {
			t.Errorf("run %s (ids up to %v) is still on disk at %v, past the window", r.path, r.last, c.now())
		}
	}
}

// TestInboxDedupMigratesSeenFiles opens an inbox left by the version that
// kept every id in memory: two generations of seen files. Their ids within
// the window end up in runs, a single seen file remains, and every id is a
// duplicate but one older than the window.
func TestInboxDedupMigratesSeenFiles(t *testing.T) {
	ctx := context.Background()
	dir, c := t.TempDir(), newTestClock()
	inboxPath := filepath.Join(dir, inboxDir)
	if err := os.MkdirAll(inboxPath, 0o700); err != nil {
		t.Fatal(err)
	}
	writeSeen := func(start time.Time, ids []string, at []time.Time, torn bool) {
		b, s := beginFrame(nil, frameSeenGen)
		b = binary.AppendVarint(b, start.UnixNano())
		b = endFrame(b, s)
		b, s = beginFrame(b, frameSeenIDs)
		for i, id := range ids {
			b = appendSeenID(b, at[i].UnixNano(), id)
		}
		b = endFrame(b, s)
		if torn {
			b = append(b, 9, 0, 0, 0, 1, 2) // a frame a crash cut
		}
		if err := os.WriteFile(seenPath(inboxPath, start), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const window = 24 * time.Hour
	now := c.now()
	older, recent := ids("gen0-", 500), ids("gen1-", 700)
	times := func(n int, at time.Time) []time.Time {
		ts := make([]time.Time, n)
		for i := range ts {
			ts[i] = at
		}
		return ts
	}
	writeSeen(now.Add(-30*time.Hour), append(older, "expired"), append(times(len(older), now.Add(-20*time.Hour)), now.Add(-25*time.Hour)), false)
	writeSeen(now.Add(-6*time.Hour), recent, times(len(recent), now.Add(-time.Hour)), true)
	ib, _, err := openInboxLimit(ctx, dir, window, c.now, 256)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	if len(ib.dd.runs) < 4 || len(ib.dd.hot) != 0 {
		t.Errorf("after migrating 1200 ids: %d runs and %d ids in memory, want at least 4 runs, none in memory", len(ib.dd.runs), len(ib.dd.hot))
	}
	if seen, _ := listed(ib.dir, "seen-"); len(seen) != 1 {
		t.Errorf("seen files after migrating = %d, want 1 (new, empty)", len(seen))
	}
	all := append(append([]string{}, older...), recent...)
	for i, dup := range commitAt(t, ib, c, all...) {
		if !dup {
			t.Errorf("%q after migrating: accepted, want duplicate", all[i])
		}
	}
	if dups := commitAt(t, ib, c, "expired"); dups[0] {
		t.Error(`"expired" (older than the window) after migrating: duplicate, want accepted`)
	}
}

// TestInboxDedupDamagedRuns opens an inbox holding a run cut short by a
// crash before its rename (a .tmp file, removed) and a corrupt run (set
// aside, its ids no longer deduplicated): opening works and the runs that
// are whole still count.
func TestInboxDedupDamagedRuns(t *testing.T) {
	ctx := context.Background()
	dir, c := t.TempDir(), newTestClock()
	ib, _, err := openInboxLimit(ctx, dir, time.Hour, c.now, 4)
	if err != nil {
		t.Fatal(err)
	}
	commitAt(t, ib, c, ids("a-", 4)...)
	c.add(time.Second)
	commitAt(t, ib, c, ids("b-", 4)...)
	settle(ib)
	c.add(time.Second)
	commitAt(t, ib, c, "c")
	settle(ib)
	if len(ib.dd.runs) != 2 {
		t.Fatalf("runs = %d, want 2", len(ib.dd.runs))
	}
	bad := ib.dd.runs[1].path // the b- ids
	if err := ib.close(ctx); err != nil {
		t.Fatal(err)
	}
	// Remove the ids' other copies (segments, seen files) so that only the
	// runs hold them.
	for _, pat := range []string{"seg-*", "seen-*"} {
		ms, _ := filepath.Glob(filepath.Join(dir, inboxDir, pat))
		for _, m := range ms {
			os.Remove(m)
		}
	}
	flipByte(runHeader+3)(t, bad)
	tmp := runPath(filepath.Join(dir, inboxDir), 99) + ".tmp"
	if err := os.WriteFile(tmp, []byte("cut"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	ib, _, err = openInboxLog(ctx, dir, time.Hour, c.now, 4, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("open with a damaged run: %v", err)
	}
	defer ib.close(ctx)
	if !strings.Contains(logged.String(), filepath.Base(bad)) {
		t.Errorf("log = %q, want a warning naming %s", logged.String(), filepath.Base(bad))
	}
	for _, p := range []string{tmp, bad} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after open: %v", filepath.Base(p), err)
		}
	}
	if _, err := os.Stat(bad + ".corrupt"); err != nil {
		t.Errorf("corrupt run not set aside: %v", err)
	}
	for _, id := range ids("a-", 4) {
		if dups := commitAt(t, ib, c, id); !dups[0] {
			t.Errorf("%q from the whole run: accepted, want duplicate", id)
		}
	}
}

// TestInboxDedupMergesRuns seals many small runs and checks that merges
// keep their number down while every id stays a duplicate.
func TestInboxDedupMergesRuns(t *testing.T) {
	ctx := context.Background()
	dir, c := t.TempDir(), newTestClock()
	ib, _, err := openInboxLimit(ctx, dir, time.Hour, c.now, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	all := ids("m-", 400)
	maxRuns := 0
	for i := 0; i < len(all); i += 4 {
		c.add(5 * time.Second)
		commitAt(t, ib, c, all[i:i+4]...)
		settle(ib)
		maxRuns = max(maxRuns, len(ib.dd.runs))
	}
	if maxRuns > 20 {
		t.Errorf("up to %d runs for 100 seals, want merges to keep at most 20", maxRuns)
	}
	for i, dup := range commitAt(t, ib, c, all...) {
		if !dup {
			t.Fatalf("%q after merges: accepted, want duplicate", all[i])
		}
	}
}

// fillDedup puts n fresh ids, accepted now, in ib's dedup index as commits
// do, sealing the hot set when it is due.
func fillDedup(tb testing.TB, ib *inbox, prefix string, n int) {
	now := ib.now()
	ib.sealDue(now)
	for i := range n {
		if len(ib.dd.hot) >= ib.dd.hotLimit {
			settle(ib)
			if err := ib.seal(now); err != nil {
				tb.Fatal(err)
			}
			ib.dedupUpkeep(now)
		}
		ib.hotAdd(digestOf(prefix+strconv.Itoa(i)), now)
	}
	settle(ib)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDedupMemory measures the heap the dedup index holds for 5M ids
// (the default 256Ki in memory, the rest in runs). Run with -benchtime=1x.
func BenchmarkDedupMemory(b *testing.B) {
	const n = 5_000_000
	for b.Loop() {
		before := heapInUse()
		ib, _, err := openInbox(context.Background(), b.TempDir(), 24*time.Hour, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		fillDedup(b, ib, "mem-", n)
		after := heapInUse()
		b.ReportMetric(float64(after-before)/n, "heap-B/id")
		b.ReportMetric(float64(after-before)/(1<<20), "heap-MB")
		b.ReportMetric(float64(len(ib.dd.runs)), "runs")
		// The peak: the hot set full, just before it is sealed.
		now := ib.now()
		for i := 0; len(ib.dd.hot) < ib.dd.hotLimit; i++ {
			ib.hotAdd(digestOf("more-"+strconv.Itoa(i)), now)
		}
		b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-MB-hot-full")
		runtime.KeepAlive(ib)
		ib.close(context.Background())
	}
}

// BenchmarkDedupLookup measures a lookup in an index of 5M ids: a fresh id
// (filters only, about 1% reading a block), a duplicate in a run (a block
// read from the page cache) and one in memory.
func BenchmarkDedupLookup(b *testing.B) {
	const n = 5_000_000
	ib, _, err := openInbox(context.Background(), b.TempDir(), 24*time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer ib.close(context.Background())
	fillDedup(b, ib, "look-", n)
	b.Logf("%d runs, %d ids in memory", len(ib.dd.runs), len(ib.dd.hot))
	hot := make([]digest, 0, len(ib.dd.hot))
	for d := range ib.dd.hot {
		hot = append(hot, d)
	}
	for _, tc := range []struct {
		name string
		ds   []digest
		want bool
	}{
		{"fresh", testDigests("fresh-", 1<<16), false},
		{"duplicate-on-disk", testDigests("look-", 1<<16), true},
		{"duplicate-in-memory", hot, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if ib.seen(tc.ds[i%len(tc.ds)]) != tc.want {
					b.Fatalf("seen = %v, want %v", !tc.want, tc.want)
				}
				i++
			}
		})
	}
}

// BenchmarkDedupOpen measures loading an index of 17M ids in runs (a day
// at about 200 deliveries/s): the time of opening the inbox. Run with
// -benchtime=1x.
func BenchmarkDedupOpen(b *testing.B) {
	const n = 17_000_000
	dir := b.TempDir()
	ib, _, err := openInbox(context.Background(), dir, 24*time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	fillDedup(b, ib, "open-", n)
	if err := ib.seal(time.Now()); err != nil {
		b.Fatal(err)
	}
	runs := len(ib.dd.runs)
	ib.close(context.Background())
	for b.Loop() {
		before := heapInUse()
		start := time.Now()
		ib, _, err := openInbox(context.Background(), dir, 24*time.Hour, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "open-s")
		b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-MB")
		b.ReportMetric(float64(runs), "runs")
		ib.close(context.Background())
	}
}

// BenchmarkDedupSeal measures sealing a full hot set (the default 256Ki
// ids): writer-ms is the writer's part, between two commits (a new seen
// file, the hot set frozen); ns/op includes the run written, sorted and
// synced by a goroutine.
func BenchmarkDedupSeal(b *testing.B) {
	ib, _, err := openInbox(context.Background(), b.TempDir(), 24*time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer ib.close(context.Background())
	round := 0
	var writer time.Duration
	for b.Loop() {
		b.StopTimer()
		now := time.Now()
		for i := range ib.dd.hotLimit {
			ib.hotAdd(digestOf("seal-"+strconv.Itoa(round)+"-"+strconv.Itoa(i)), now)
		}
		round++
		b.StartTimer()
		start := time.Now()
		if err := ib.seal(now); err != nil {
			b.Fatal(err)
		}
		writer += time.Since(start)
		settle(ib)
	}
	b.ReportMetric(float64(writer.Microseconds())/1e3/float64(round), "writer-ms")
}

// TestDedupMemoryWhileSealing bounds the heap the default dedup index
// holds at its peak: a full hot set being sealed (the frozen set, the
// seal's sorted copy and write buffer) while a new hot set has filled
// again. The sidecar's GC target multiplies what is live by three, so
// this counts in its RSS under load several times over.
func TestDedupMemoryWhileSealing(t *testing.T) {
	const limit = 4 << 20
	before := heapInUse()
	ib, _, err := openInbox(context.Background(), t.TempDir(), 24*time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(context.Background())
	now := time.Now()
	for i := range ib.dd.hotLimit {
		ib.hotAdd(digestOf("first-"+strconv.Itoa(i)), now)
	}
	if err := ib.seal(now); err != nil {
		t.Fatal(err)
	}
	for i := range ib.dd.hotLimit {
		ib.hotAdd(digestOf("second-"+strconv.Itoa(i)), now)
	}
	after := heapInUse()
	held := after - min(before, after)
	settle(ib)
	runtime.KeepAlive(ib)
	if held > limit {
		t.Fatalf("dedup index of %d ids in memory held %.1f MiB of heap while sealing, want at most %.1f MiB: lower defaultHotLimit or the seal's buffers (dedup.go)",
			ib.dd.hotLimit, float64(held)/(1<<20), float64(limit)/(1<<20))
	}
	t.Logf("%d ids in memory: %.1f MiB of heap while sealing", ib.dd.hotLimit, float64(held)/(1<<20))
}
