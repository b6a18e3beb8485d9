// Command sinkload fills a Kafka topic for bench/sink.sh: n CloudEvents of
// about 1 KB of JSON data, 64 partition keys in turn, written through
// Tributary's own Kafka stream (so stored exactly as the sidecar stores
// events), and returns once every one is acknowledged by the broker.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := flag.String("topic", "", "topic to fill (required)")
	n := flag.Int("n", 100000, "events to append")
	partitions := flag.Int("partitions", 3, "partitions of the topic when it is created")
	flag.Parse()
	if *topic == "" {
		fail(fmt.Errorf("-topic is required"))
	}
	var bs []any
	for _, b := range strings.Split(*brokers, ",") {
		bs = append(bs, b)
	}
	st := kafka.New()
	if err := st.Configure(core.NewConfig("stream", map[string]any{"brokers": bs, "topic_partitions": *partitions})); err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := st.Open(ctx, core.Env{Name: "sinkload"}); err != nil {
		fail(fmt.Errorf("open the Kafka stream at %s: %w", *brokers, err))
	}
	pub := st.Publisher().(core.EventPublisher)
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	start := time.Now()
	for i := 0; i < *n; i += 512 {
		batch := make([]*core.Event, 0, 512)
		for j := i; j < min(i+512, *n); j++ {
			key := "order-" + strconv.Itoa(j%64)
			batch = append(batch, &core.Event{
				ID: "ev-" + strconv.Itoa(j), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
				Type: "com.example.order.accepted", Subject: key, PartitionKey: key, DataContentType: "application/json",
				Time: t0.Add(time.Duration(j) * time.Microsecond),
				Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, j, pad),
			})
		}
		wg.Add(1)
		if err := pub.PublishEvents(ctx, *topic, batch, func(err error) {
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			wg.Done()
		}); err != nil {
			fail(err)
		}
	}
	wg.Wait()
	if failed != nil {
		fail(failed)
	}
	if err := st.Close(ctx); err != nil {
		fail(err)
	}
	fmt.Printf("sinkload: %d events in %s to topic %s\n", *n, time.Since(start).Round(time.Millisecond), *topic)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sinkload:", err)
	os.Exit(1)
}
