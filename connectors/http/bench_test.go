package http_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
)

// BenchmarkWrite delivers 1 KB events of 64 keys to a local endpoint that
// answers 200 at once, in batches of 64 deliveries, as the runtime calls
// Write: calls Write calls at once, each holding its own keys (the runtime
// never gives one key to two calls at once). It reports events/s.
func BenchmarkWrite(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	for _, bc := range []struct {
		name  string
		body  string
		calls int
	}{
		{name: "cloudevent/calls=1", body: "cloudevent", calls: 1},
		{name: "cloudevent/calls=4", body: "cloudevent", calls: 4},
		{name: "binary/calls=4", body: "binary", calls: 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := sink.New()
			cfg := map[string]any{"url": srv.URL + "/hooks", "body": bc.body, "max_concurrency": 64,
				"signing_secrets": []any{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
			if err := s.Configure(core.NewConfig("bench", cfg)); err != nil {
				b.Fatal(err)
			}
			if err := s.Open(context.Background(), core.Env{Name: "bench"}); err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			const keys, batch = 64, 64
			perCall := keys / bc.calls
			// batches[c] is call c's batch: its keys, batch/perCall events each.
			batches := make([][]core.Delivery, bc.calls)
			pad := strings.Repeat("x", 900)
			for c := range bc.calls {
				for i := range batch {
					key := fmt.Sprintf("order-%d", c*perCall+i%perCall)
					ev := event(fmt.Sprintf("%s-%d", key, i), key, map[string]any{"order_id": key, "seq": i, "note": pad})
					batches[c] = append(batches[c], core.Delivery{Event: ev})
				}
			}
			b.SetBytes(int64(len(batches[0][0].Event.Data)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			sent := 0
			for c := range bc.calls {
				n := b.N / bc.calls / batch
				if c == 0 {
					n += (b.N - n*bc.calls*batch + batch - 1) / batch
				}
				sent += n * batch
				wg.Go(func() {
					for range n {
						for _, r := range s.Write(context.Background(), batches[c]) {
							if r.Status != core.StatusDelivered {
								b.Errorf("result %+v", r)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "events/s")
		})
	}
}
