package kafka

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestProduceVersionNegotiated: configured for Kafka 3.6 the producer
// would send produce requests of version 9, but a broker whose ApiVersions
// answer stops at version 5 (Kafka 1.x) gets version 5, and the records are stored.
func TestProduceVersionNegotiated(t *testing.T) {
	b := sarama.NewMockBroker(t, 1)
	defer b.Close()
	b.SetHandlerByMap(map[string]sarama.MockResponse{
		"ApiVersionsRequest": sarama.NewMockApiVersionsResponse(t).SetApiKeys([]sarama.ApiVersionsResponseKey{
			{ApiKey: 0, MinVersion: 3, MaxVersion: 5},  // Produce
			{ApiKey: 3, MinVersion: 0, MaxVersion: 7},  // Metadata
			{ApiKey: 18, MinVersion: 0, MaxVersion: 3}, // ApiVersions
			{ApiKey: 22, MinVersion: 0, MaxVersion: 1}, // InitProducerId
		}),
		"MetadataRequest":       sarama.NewMockMetadataResponse(t).SetBroker(b.Addr(), b.BrokerID()).SetController(b.BrokerID()).SetLeader("t", 0, b.BrokerID()),
		"InitProducerIDRequest": sarama.NewMockInitProducerIDResponse(t).SetProducerID(7).SetProducerEpoch(1),
		"ProduceRequest":        sarama.NewMockProduceResponse(t),
	})
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Producer.RequiredAcks = sarama.WaitForAll
	if v := produceVersion(sc.Version); v != 9 {
		t.Fatalf("produceVersion(3.6) = %d, want 9", v)
	}
	client, err := sarama.NewClient([]string{b.Addr()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	p, err := newProducer(context.Background(), client, sc, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close(context.Background())
	pub := &publisher{prod: p, closing: make(chan struct{}), calls: map[*call]struct{}{}}
	parts, err := p.partitions("t")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	c := &call{done: func(err error) { done <- err }, p: pub}
	c.remaining.Store(1)
	err = p.reserve(context.Background(), nil, 100, func(w *wakeSet) {
		now := time.Now()
		p.add(parts, []byte("k"), []byte("v"), nil, now.UnixMilli(), now, c, w)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("publish: %v", err)
	}
	var versions []int16
	for _, rr := range b.History() {
		if req, ok := rr.Request.(*sarama.ProduceRequest); ok {
			versions = append(versions, req.Version)
		}
	}
	if len(versions) != 1 || versions[0] != 5 {
		t.Fatalf("produce request versions %v, want [5]", versions)
	}
}
