package webhook

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook/webhooktest"
	"github.com/tributary/tributary/core"
)

// spillHarness is a source over a real loopback server whose Read is not
// called while deliveries arrive: a stalled stream.
type spillHarness struct {
	t      testing.TB
	dir    string
	router *webhooktest.Router
	srv    *httptest.Server
	src    *Source
	// maxPending is the source's MaxPending; 0 takes the default.
	maxPending int
}

func newSpillHarness(t *testing.T) *spillHarness {
	t.Helper()
	h := &spillHarness{t: t, dir: t.TempDir(), router: webhooktest.NewRouter()}
	h.srv = httptest.NewServer(h.router)
	t.Cleanup(h.srv.Close)
	h.open(core.Position{})
	t.Cleanup(func() { _ = h.src.Close(context.Background()) })
	return h
}

// open opens the source on h.dir; from is the runtime's checkpoint.
func (h *spillHarness) open(from core.Position) {
	h.t.Helper()
	src, err := NewSource(Config{Path: "/hooks/orders", MaxPending: h.maxPending, DeliveryID: func(r *Request) string { return r.HTTP.Header.Get("X-Delivery") }})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := src.Open(context.Background(), core.Env{Name: "orders", StateDir: h.dir, HTTP: h.router}, from); err != nil {
		h.t.Fatal(err)
	}
	h.src = src
}

// spillBody is delivery i's body: about 4 KB, its own.
func spillBody(i int) string {
	return `{"n":` + strconv.Itoa(i) + `,"pad":"` + strings.Repeat(strconv.Itoa(i%10), 4000) + `"}`
}

// post sends deliveries 0..n-1 (spillBody) from several senders and
// fails unless each is accepted.
func (h *spillHarness) post(n int) {
	h.t.Helper()
	h.postBody(n, spillBody)
}

// postBody is post with delivery i's body from body.
func (h *spillHarness) postBody(n int, body func(int) string) {
	h.t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/hooks/orders", strings.NewReader(body(i)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Delivery", "d-"+strconv.Itoa(i))
				req.Header.Set("X-Extra", "e-"+strconv.Itoa(i))
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("delivery %d: status %d", i, resp.StatusCode)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatal(err)
	}
}

// queued counts what the queue holds: deliveries in memory, deliveries
// spilled and the runs holding them; it checks the queue's counts.
func (h *spillHarness) queued() (inMemory, spilled, runs int) {
	h.t.Helper()
	r := h.src.run
	r.qmu.Lock()
	defer r.qmu.Unlock()
	var mem int64
	for _, e := range r.queue {
		if e.rec != nil {
			inMemory++
			mem += e.rec.memory()
			continue
		}
		runs++
		spilled += e.run.count
	}
	if mem != r.qmem || inMemory+spilled != r.qlen {
		h.t.Errorf("queue memory %d and length %d; its entries hold %d and %d", r.qmem, r.qlen, mem, inMemory+spilled)
	}
	if r.qmem > queueMemory {
		h.t.Errorf("queue memory = %d, over the bound %d", r.qmem, queueMemory)
	}
	return inMemory, spilled, runs
}

// stored returns the ids of the deliveries the inbox's segments hold, in
// sequence order, read from the files.
func (h *spillHarness) stored() []string {
	h.t.Helper()
	dir := h.src.run.ib.dir
	nums, err := listed(dir, "seg-")
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	var last uint64
	for _, n := range nums {
		data, err := os.ReadFile(segmentPath(dir, n))
		if err != nil {
			h.t.Fatal(err)
		}
		for {
			p, rest, ok := nextFrame(data)
			if !ok {
				break
			}
			data = rest
			if p[0] != frameDelivery {
				continue
			}
			rec, err := decodeDelivery(p[1:])
			if err != nil || rec.seq <= last {
				h.t.Fatalf("segment %d: delivery %+v after sequence %d: %v", n, rec, last, err)
			}
			last = rec.seq
			ids = append(ids, rec.id)
		}
	}
	return ids
}

// checkChanges checks that chs are the deliveries of ids, in order, with
// their bodies, payloads and headers.
func checkChanges(t *testing.T, chs []core.Change, ids []string) {
	t.Helper()
	if len(chs) != len(ids) {
		t.Fatalf("%d changes, want %d", len(chs), len(ids))
	}
	for k, ch := range chs {
		id := string(ch.Position.Data)
		if id != ids[k] {
			t.Fatalf("change %d is delivery %s, want %s", k, id, ids[k])
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(id, "d-"))
		if string(ch.Raw) != spillBody(i) {
			t.Fatalf("delivery %s: body %.40q..., want delivery %d's", id, ch.Raw, i)
		}
		if p, _ := ch.Payload.(map[string]any); p == nil || fmt.Sprint(p["n"]) != strconv.Itoa(i) {
			t.Fatalf("delivery %s: payload n = %v, want %d", id, ch.Payload, i)
		}
		hdr, _ := ch.Meta["headers"].(map[string]any)
		if hdr["X-Extra"] != "e-"+strconv.Itoa(i) || ch.Meta["method"] != "POST" || ch.Meta["content_type"] != "application/json" {
			t.Fatalf("delivery %s: meta %v, want its headers, method and content type", id, ch.Meta)
		}
	}
}

func (h *spillHarness) readAll(n int) []core.Change {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []core.Change
	for len(out) < n {
		chs, err := h.src.Read(ctx)
		if err != nil {
			h.t.Fatalf("Read() after %d of %d changes: %v", len(out), n, err)
		}
		out = append(out, chs...)
	}
	return out
}

// TestBacklogSpillsToInbox queues a backlog of about 5 MB while Read is
// not called: the queue holds at most queueMemory, the rest is spilled in
// a few runs, and Read returns every delivery in order, whole, reading the
// spilled ones back across segments.
func TestBacklogSpillsToInbox(t *testing.T) {
	h := newSpillHarness(t)
	h.src.run.ib.segmentBytes = 256 << 10 // several segments; set before the first delivery reaches the writer
	const n = 1200
	h.post(n)
	ids := h.stored()
	if len(ids) != n {
		t.Fatalf("%d deliveries stored, want %d", len(ids), n)
	}
	inMemory, spilled, runs := h.queued()
	if inMemory+spilled != n || spilled == 0 || inMemory == 0 || int64(inMemory) > queueMemory/4000 {
		t.Fatalf("%d deliveries in memory, %d spilled: want all %d, but those fitting %d bytes spilled", inMemory, spilled, n, queueMemory)
	}
	segs, _ := listed(h.src.run.ib.dir, "seg-")
	if len(segs) < 4 || runs > len(segs) {
		t.Fatalf("%d runs in %d segments: want several segments, a run in each at most", runs, len(segs))
	}
	if got := h.src.Status()["inbox_read_back"]; got != int64(0) {
		t.Fatalf("inbox_read_back = %v before Read, want 0", got)
	}
	chs := h.readAll(n)
	checkChanges(t, chs, ids)
	if got := h.src.Status()["inbox_read_back"]; got != int64(spilled) {
		t.Errorf("inbox_read_back = %v, want %d", got, spilled)
	}
	if inMemory, spilled, _ := h.queued(); inMemory+spilled != 0 || h.src.run.qmem != 0 {
		t.Errorf("after reading all: %d queued, queue memory %d; want none", inMemory+spilled, h.src.run.qmem)
	}
	if err := h.src.Ack(context.Background(), chs[len(chs)-1].Position); err != nil {
		t.Fatal(err)
	}
	if p := h.src.Status()["inbox_pending"]; p != int64(0) {
		t.Errorf("inbox_pending = %v after acknowledging all, want 0", p)
	}
}

// TestSpilledBacklogAcrossDrainAndRestart drains a spilled backlog: Drain
// returns its head, bounded; what it leaves is read after a restart from
// the checkpoint of the last drained delivery, in order, none lost and
// none twice; an inbox opened on a backlog queues it as runs.
func TestSpilledBacklogAcrossDrainAndRestart(t *testing.T) {
	h := newSpillHarness(t)
	const n = 1500
	h.post(n)
	ids := h.stored()
	ctx := context.Background()
	drained, err := h.src.Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(drained) == 0 || len(drained) >= n {
		t.Fatalf("Drain returned %d of %d deliveries: want the head, bounded", len(drained), n)
	}
	checkChanges(t, drained, ids[:len(drained)])
	if err := h.src.Ack(ctx, drained[len(drained)-1].Position); err != nil {
		t.Fatal(err)
	}
	if err := h.src.Close(ctx); err != nil {
		t.Fatal(err)
	}

	h.open(drained[len(drained)-1].Position)
	rest := ids[len(drained):]
	inMemory, spilled, runs := h.queued()
	if inMemory != 0 || spilled != len(rest) || runs != 1 || h.src.run.qmem != 0 {
		t.Errorf("after opening on a backlog: %d in memory, %d spilled in %d runs, queue memory %d; want none in memory, %d in one run", inMemory, spilled, runs, h.src.run.qmem, len(rest))
	}
	if p := h.src.Status()["inbox_pending"]; p != int64(len(rest)) {
		t.Errorf("inbox_pending = %v after opening, want %d", p, len(rest))
	}
	checkChanges(t, h.readAll(len(rest)), rest)
}

// TestSpilledDeliveryDamaged damages a spilled delivery's frame in its
// segment: Read fails naming the file, and loses nothing: the deliveries
// not returned stay queued, and Read fails the same way again. Reopened
// (as the runtime does after a failed Read), the inbox skips the damaged
// frame, counts it, and the deliveries after it are read.
func TestSpilledDeliveryDamaged(t *testing.T) {
	h := newSpillHarness(t)
	const n = 800
	h.post(n)
	ids := h.stored()
	r := h.src.run
	r.qmu.Lock()
	last := r.queue[len(r.queue)-1]
	r.qmu.Unlock()
	if last.rec != nil {
		t.Fatal("nothing spilled")
	}
	path := segmentPath(r.ib.dir, last.run.seg)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("XXXX"), last.run.start+(last.run.end-last.run.start)/2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var read []core.Change
	var readErr error
	for readErr == nil && len(read) < n {
		var chs []core.Change
		chs, readErr = h.src.Read(ctx)
		read = append(read, chs...)
	}
	if readErr == nil {
		t.Fatal("Read returned every delivery of a damaged segment")
	}
	for _, want := range []string{path, "no valid frame"} {
		if !strings.Contains(readErr.Error(), want) {
			t.Errorf("Read() error = %q, want it to name %q", readErr, want)
		}
	}
	checkChanges(t, read, ids[:len(read)])
	if inMemory, spilled, _ := h.queued(); inMemory+spilled != n-len(read) {
		t.Fatalf("after the failed Read, %d queued; want the %d not returned", inMemory+spilled, n-len(read))
	}
	if _, err := h.src.Read(ctx); err == nil || err.Error() != readErr.Error() {
		t.Errorf("second Read() error = %v, want %v again", err, readErr)
	}

	if err := h.src.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h.open(read[len(read)-1].Position)
	rest := ids[len(read):]
	if d := h.src.Status()["inbox_damaged"]; d != 1 {
		t.Errorf("inbox_damaged = %v after reopening, want 1", d)
	}
	after := h.readAll(len(rest) - 1)
	lost := 0
	for lost < len(after) && string(after[lost].Position.Data) == rest[lost] {
		lost++
	}
	want := append(slices.Clone(rest[:lost]), rest[lost+1:]...)
	checkChanges(t, after, want)
	if inMemory, spilled, _ := h.queued(); inMemory+spilled != 0 {
		t.Errorf("%d deliveries still queued after reading all but the damaged one", inMemory+spilled)
	}
}

// BenchmarkBacklogMemory measures the live heap a backlog of 1 KB
// deliveries holds while the stream does not read (a stalled broker):
// with the queue's bound, and with none (every delivery held in memory,
// as before deliveries were spilled). b.N is ignored: each run queues
// 20,000 deliveries.
func BenchmarkBacklogMemory(b *testing.B) {
	for _, bound := range []struct {
		name  string
		bytes int64
	}{{"bounded", queueMemory}, {"unbounded", 1 << 40}} {
		b.Run(bound.name, func(b *testing.B) {
			prev := queueMemory
			queueMemory = bound.bytes
			defer func() { queueMemory = prev }()
			const n = 20000
			h := &spillHarness{t: b, dir: b.TempDir(), router: webhooktest.NewRouter(), maxPending: 1 << 20}
			h.srv = httptest.NewServer(h.router)
			defer h.srv.Close()
			h.open(core.Position{})
			defer h.src.Close(context.Background())
			// The paths bench/webhook.sh's rule reads: the handler keeps
			// only those of the payload.
			h.src.SetPayloadPaths([]core.PayloadPath{
				{Fields: []string{"event"}},
				{Fields: []string{"order", "id"}},
				{Fields: []string{"order", "customer"}},
				{Fields: []string{"order", "total"}},
				{Fields: []string{"order", "currency"}},
				{Fields: []string{"order", "lines"}, LenOnly: true},
			}, false)
			before := liveHeap()
			h.postBody(n, func(i int) string {
				return `{"event":"order.placed","order":{"id":"o-` + strconv.Itoa(i) + `","customer":"c-1","total":12.5,"currency":"EUR","lines":[` + strings.Repeat(`{"sku":"ABC-123","qty":1,"price":9.99},`, 22) + `{"sku":"Z","qty":1,"price":1}]}}`
			})
			after := liveHeap()
			_, spilled, _ := h.queued()
			b.ReportMetric(float64(after-before)/n, "heap-bytes/delivery")
			b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(spilled), "spilled")
		})
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() int64 {
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
