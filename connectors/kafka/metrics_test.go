package kafka

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestProducerMetricsAndThrottle publishes to a broker that answers with
// a throttle time: the producer counts the batch, its records, the
// request's latency and the throttle, and sends nothing to the broker
// until the throttle time has passed.
func TestProducerMetricsAndThrottle(t *testing.T) {
	const throttle = 300 * time.Millisecond
	b := sarama.NewMockBroker(t, 1)
	defer b.Close()
	resp := &sarama.ProduceResponse{Version: 7, ThrottleTime: throttle}
	resp.Blocks = map[string]map[int32]*sarama.ProduceResponseBlock{"t": {0: {Err: sarama.ErrNoError}}}
	b.SetHandlerByMap(map[string]sarama.MockResponse{
		"MetadataRequest":       sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()).SetController(b.BrokerID()).SetLeader("t", 0, b.BrokerID()),
		"InitProducerIDRequest": sarama.NewMockInitProducerIDResponse(t).SetProducerID(7).SetProducerEpoch(1),
		"ProduceRequest":        sarama.NewMockWrapper(resp),
	})
	sc := sarama.NewConfig()
	sc.Version = sarama.V2_1_0_0 // produce requests of version 7
	sc.ApiVersionsRequest = false
	sc.Producer.RequiredAcks = sarama.WaitForAll
	client, err := sarama.NewClient([]string{b.Addr()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	reg := prometheus.NewRegistry()
	metrics, err := newProducerMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProducer(context.Background(), client, sc, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(context.Background())
	pub := &publisher{prod: p, closing: make(chan struct{}), calls: map[*call]struct{}{}}
	parts, err := p.partitions("t")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) time.Time {
		t.Helper()
		done := make(chan error, 1)
		c := &call{done: func(err error) { done <- err }, p: pub}
		c.remaining.Store(int64(n))
		err := p.reserve(context.Background(), nil, 100*n, func(w *wakeSet) {
			now := time.Now()
			for range n {
				p.add(parts, nil, []byte("value"), []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("v")}}, now.UnixMilli(), now, c, w)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("publish: %v", err)
		}
		return time.Now()
	}
	answered := publish(3)
	requested := len(b.History())
	publish(2)
	// The second request waited for the throttle the first answer asked.
	if waited := time.Since(answered); waited < throttle {
		t.Fatalf("second publish answered %s after the first, within the broker's throttle of %s", waited, throttle)
	}
	if len(b.History()) <= requested {
		t.Fatal("the second publish sent no request")
	}
	for _, m := range []struct {
		name string
		got  float64
		want float64
	}{
		{"batches", testutil.ToFloat64(metrics.batches), 2},
		{"in flight", testutil.ToFloat64(metrics.requests), 0},
		{"retries", testutil.ToFloat64(metrics.retries), 0},
		{"throttle seconds", testutil.ToFloat64(metrics.throttle), 2 * throttle.Seconds()},
	} {
		if m.got != m.want {
			t.Errorf("%s = %v, want %v", m.name, m.got, m.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "tributary_kafka_producer_batch_records", "tributary_kafka_producer_request_seconds"); n != 2 {
		t.Errorf("%d histograms exported, want 2", n)
	}
}
