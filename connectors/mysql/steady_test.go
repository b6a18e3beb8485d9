package mysql_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// ackClock wraps a source and records when each change (by its row id)
// was covered by an Ack: the runtime acks only once the change's events
// are durable and its checkpoint stored.
type ackClock struct {
	core.Source
	mu    sync.Mutex
	order []int64        // row ids in read order
	index map[string]int // position -> index in order
	acked map[int64]time.Time
	next  int // first index not yet acked
}

func newAckClock(src core.Source) *ackClock {
	return &ackClock{Source: src, index: map[string]int{}, acked: map[int64]time.Time{}}
}

func (a *ackClock) Read(ctx context.Context) ([]core.Change, error) {
	b, err := a.Source.Read(ctx)
	a.mu.Lock()
	for _, ch := range b {
		id, _ := ch.Key["id"].(int64)
		a.index[string(ch.Position.Identity())] = len(a.order)
		a.order = append(a.order, id)
	}
	a.mu.Unlock()
	return b, err
}

func (a *ackClock) Ack(ctx context.Context, pos core.Position) error {
	now := time.Now()
	a.mu.Lock()
	if i, ok := a.index[string(pos.Identity())]; ok {
		for ; a.next <= i; a.next++ {
			if id := a.order[a.next]; id > 0 {
				a.acked[id] = now
			}
		}
	}
	a.mu.Unlock()
	return a.Source.Ack(ctx, pos)
}

// BenchmarkSteady5k commits 5,000 single-row inserts a second (50-row
// transactions every 10 ms) for TRIBUTARY_BENCH_SECONDS (default 10)
// while the runtime streams them into Kafka, and reports the percentiles
// of commit-to-ack: from the moment the client's COMMIT returned to the
// Ack that follows the events' durability and the checkpoint's storage.
// MariaDB's commit times have whole seconds only, so the client's clock
// stands in for them.
func BenchmarkSteady5k(b *testing.B) {
	brokers := servicetest.Kafka(b)
	bs := make([]any, len(brokers))
	for i, x := range brokers {
		bs[i] = x
	}
	secs := 10
	if v := os.Getenv("TRIBUTARY_BENCH_SECONDS"); v != "" {
		secs, _ = strconv.Atoi(v)
	}
	d := newDB(b)
	d.exec(b, `CREATE TABLE bench (id BIGINT PRIMARY KEY, name VARCHAR(40), total DECIMAL(12,2), created DATETIME(6))`)
	cfg := d.config("bench")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	var lat []time.Duration
	rate := 0.0
	next := 1
	for b.Loop() {
		name := "mysteady_" + strconv.FormatInt(time.Now().UnixNano(), 10)
		st := kafka.New()
		if err := st.Configure(core.NewConfig("stream", map[string]any{"brokers": bs})); err != nil {
			b.Fatal(err)
		}
		clock := newAckClock(newSource(b, cfg))
		rt, err := runtime.New(runtime.Options{
			Stream:          st,
			Topics:          runtime.Topics{Mode: "single", Name: "tributary.bench.mysql"},
			Connectors:      []runtime.Connector{{Name: name, Type: "mysql_cdc", Source: clock, Mapper: benchMapper(b, name), MaxInFlight: benchInFlight(b)}},
			StateDir:        b.TempDir(),
			ShutdownTimeout: 30 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		for rt.Status().Connectors[0].State != runtime.StateRunning {
			time.Sleep(10 * time.Millisecond)
		}
		committed := map[int64]time.Time{}
		warm := time.Second
		tick := time.NewTicker(10 * time.Millisecond)
		start := time.Now()
		rows := 0
		for time.Since(start) < warm+time.Duration(secs)*time.Second {
			<-tick.C
			for due := int(time.Since(start).Seconds() * 5000); rows+50 <= due; rows += 50 {
				d.exec(b, sprintf(`INSERT INTO bench SELECT seq, CONCAT('order ', seq), seq * 1.25, NOW(6) FROM seq_%d_to_%d`, next, next+49))
				at := time.Now()
				if at.Sub(start) > warm {
					for id := next; id < next+50; id++ {
						committed[int64(id)] = at
					}
				}
				next += 50
			}
		}
		tick.Stop()
		rate = float64(rows) / time.Since(start).Seconds()
		deadline := time.Now().Add(time.Minute)
		for {
			clock.mu.Lock()
			n := clock.next
			clock.mu.Unlock()
			if n >= rows || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		clock.mu.Lock()
		for id, at := range committed {
			if ack, ok := clock.acked[id]; ok {
				lat = append(lat, ack.Sub(at))
			} else {
				b.Errorf("row %d never acknowledged", id)
				break
			}
		}
		clock.mu.Unlock()
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
	}
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1), "max-ms")
}
