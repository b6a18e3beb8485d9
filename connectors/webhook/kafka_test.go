package webhook_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// TestEndToEndKafka posts signed deliveries over real HTTP through the
// runtime into the real Kafka broker, and reads them back with a stock
// Kafka consumer: CloudEvents binary-mode headers, the partition key as
// record key, the event data as value.
func TestEndToEndKafka(t *testing.T) {
	brokers := servicetest.Kafka(t)
	suffix := fmt.Sprint(time.Now().UnixNano())
	topic := "webhook-e2e-" + suffix
	st := kafka.New()
	brokerList := make([]any, len(brokers))
	for i, b := range brokers {
		brokerList[i] = b
	}
	err := st.Configure(core.NewConfig("stream", map[string]any{
		"brokers":           brokerList,
		"topic_partitions":  1,
		"topic_replication": 1,
		"checkpoint_topic":  "webhook-e2e-checkpoints-" + suffix,
	}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()
	sc := startSidecarOn(t, dir, router, st, topic, nil)
	defer sc.stop()

	const n = 20
	for i := range n {
		if code := postDemo(t, srv.URL, fmt.Sprint("k-", i), i); code != 200 {
			t.Fatalf("delivery %d = %d", i, code)
		}
	}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(60 * time.Second)
	seen := map[string]bool{}
	for len(seen) < n {
		var rec *sarama.ConsumerMessage
		select {
		case rec = <-pc.Messages():
		case <-timeout:
			t.Fatalf("read %d of %d records", len(seen), n)
		}
		h := map[string]string{}
		for _, x := range rec.Headers {
			h[string(x.Key)] = string(x.Value)
		}
		var data map[string]any
		if err := json.Unmarshal(rec.Value, &data); err != nil {
			t.Fatalf("record value %q: %v", rec.Value, err)
		}
		order := fmt.Sprint(data["order_id"])
		var i int
		if _, err := fmt.Sscanf(order, "o-%d", &i); err != nil {
			t.Fatalf("order_id %q", order)
		}
		wantID := core.EventID("demo_orders", core.Position{Version: 1, Data: []byte(fmt.Sprint("k-", i))}, "order_received")
		want := map[string]string{
			"ce_id":           wantID,
			"ce_type":         "com.example.order.received",
			"ce_specversion":  "1.0",
			"ce_subject":      order,
			"ce_partitionkey": order,
			"content-type":    "application/json",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("record of %s: header %s = %q, want %q", order, k, h[k], v)
			}
		}
		if h["ce_source"] == "" || h["ce_time"] == "" {
			t.Errorf("record of %s: ce_source %q, ce_time %q", order, h["ce_source"], h["ce_time"])
		}
		if string(rec.Key) != order {
			t.Errorf("record key %q, want %q", rec.Key, order)
		}
		seen[wantID] = true
	}
}
