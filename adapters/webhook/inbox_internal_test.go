package webhook

import (
	"context"
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
