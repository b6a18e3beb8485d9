package webhook

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkInbox measures the inbox alone: concurrent submitters of 1 KB
// deliveries, group-committed with an fsync per transaction, acked as they
// commit.
func BenchmarkInbox(b *testing.B) {
	ib, _, err := openInbox(context.Background(), b.TempDir(), time.Hour, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	ib.onCommit = func(recs []*record) { ib.ack(recs[len(recs)-1].seq) }
	ib.start()
	defer ib.close(context.Background())
	body := make([]byte, 1024)
	meta := recordMeta{Method: "POST", Path: "/hooks/x", ContentType: "application/json",
		Headers: map[string]string{"Content-Type": "application/json", "X-Signature": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "User-Agent": "bench"}}
	var seq atomic.Int64
	b.SetParallelism(128)
	b.SetBytes(1024)
	start := time.Now()
	var mu sync.Mutex
	var failed error
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := &record{id: strconv.FormatInt(seq.Add(1), 10), received: time.Now(), meta: meta, body: body}
			if _, err := ib.submit(context.Background(), rec); err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(float64(ib.stored.Load())/float64(max(1, ib.commits.Load())), "deliveries/commit")
}

// TestInboxDuplicatesInOneBatch commits a batch that holds the same
// delivery id twice, and an id an earlier batch stored: only the first copy
// of the new id is stored.
func TestInboxDuplicatesInOneBatch(t *testing.T) {
	ctx := context.Background()
	ib, _, err := openInbox(ctx, t.TempDir(), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.close(ctx)
	var committed []string
	ib.onCommit = func(recs []*record) {
		for _, r := range recs {
			committed = append(committed, r.id)
		}
	}
	req := func(id string) *writeReq {
		return &writeReq{rec: &record{id: id, received: time.Now(), body: []byte(`{}`)}, done: make(chan struct{})}
	}
	first := []*writeReq{req("a")}
	ib.commitBatch(first)
	batch := []*writeReq{req("b"), req("a"), req(`b`), req("c \"quoted\""), req("\xff\x00raw"), req("\xff\x00raw")}
	ib.commitBatch(batch)
	var dups []bool
	for _, r := range append(first, batch...) {
		if r.err != nil {
			t.Fatalf("delivery %q: %v", r.rec.id, r.err)
		}
		dups = append(dups, r.dup)
	}
	if want := []bool{false, false, true, true, false, false, true}; !slices.Equal(dups, want) {
		t.Errorf("duplicates = %v, want %v", dups, want)
	}
	if want := []string{"a", "b", "c \"quoted\"", "\xff\x00raw"}; !slices.Equal(committed, want) {
		t.Errorf("stored = %q, want %q", committed, want)
	}
	if seqs := []uint64{batch[0].rec.seq, batch[3].rec.seq}; seqs[0] != 2 || seqs[1] != 3 {
		t.Errorf("sequences = %v, want [2 3]", seqs)
	}
}
