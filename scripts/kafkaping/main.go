// Command kafkaping waits until a Kafka broker answers a metadata request.
//
// scripts/services runs it after starting the broker:
//
//	go run ./scripts/kafkaping -brokers 127.0.0.1:9092 -timeout 90s
//
// It exits 0 once the cluster reports at least one broker and a controller,
// and 1 with the last error when the timeout passes first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated broker addresses")
	timeout := flag.Duration("timeout", 90*time.Second, "how long to wait for an answer")
	flag.Parse()
	sarama.Logger = log.New(io.Discard, "", 0)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := wait(ctx, strings.Split(*brokers, ",")); err != nil {
		fmt.Fprintf(os.Stderr, "kafkaping: %v\n", err)
		os.Exit(1)
	}
}

func wait(ctx context.Context, brokers []string) error {
	var last error
	for {
		if last = ping(brokers); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %s did not answer a metadata request in time: %w", strings.Join(brokers, ","), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func ping(brokers []string) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "tributary-kafkaping"
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Net.ReadTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if len(client.Brokers()) == 0 {
		return errors.New("metadata lists no broker")
	}
	if _, err := client.Controller(); err != nil {
		return fmt.Errorf("find controller: %w", err)
	}
	return nil
}
