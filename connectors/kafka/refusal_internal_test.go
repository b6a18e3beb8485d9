package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"

	"github.com/tributary/tributary/core"
)

// TestPublishErrorsClassified answers a publish with each error a broker
// may give, the producer allowed no retry: refusals of the record fail its
// call with an error wrapping core.ErrPermanent, naming the topic, the
// partition and the broker's reason; anything a retry may outlive (a
// leader moving, a timeout, a quota, a lost connection) fails it with an
// error that does not, so that the runtime publishes the events again.
func TestPublishErrorsClassified(t *testing.T) {
	tests := []struct {
		name      string
		code      sarama.KError // the broker's answer; ErrNoError: the connection is cut
		permanent bool
	}{
		{"message too large", sarama.ErrMessageSizeTooLarge, true},
		{"record list too large", sarama.ErrMessageSetSizeTooLarge, true},
		{"invalid record", sarama.ErrInvalidRecord, true},
		{"corrupt message", sarama.ErrInvalidMessage, true},
		{"invalid timestamp", sarama.ErrInvalidTimestamp, true},
		{"not the leader", sarama.ErrNotLeaderForPartition, false},
		{"timed out", sarama.ErrRequestTimedOut, false},
		{"throttled", sarama.ErrThrottlingQuotaExceeded, false},
		{"not enough replicas", sarama.ErrNotEnoughReplicas, false},
		{"storage error", sarama.ErrKafkaStorageError, false},
		{"unknown server error", sarama.ErrUnknown, false},
		{"connection cut", sarama.ErrNoError, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStream(t, map[string]any{"topic_partitions": 1})
			topic := "classified-" + watermill.NewShortUUID()
			pub := s.Publisher()
			// The topic exists and the producer knows its leader before
			// the answer is rewritten.
			if err := pub.Publish(topic, eventMessages(0, 1)...); err != nil {
				t.Fatalf("publish: %v", err)
			}
			var mu sync.Mutex
			lies := 1
			c := &cutter{}
			prod := s.conn.pub.prod
			prod.mu.Lock()
			prod.opts.maxRetries = 0
			prod.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := c.dial(ctx, network, addr)
				if err != nil || tc.code == sarama.ErrNoError {
					return nc, err
				}
				return &lyingConn{Conn: nc, mu: &mu, lies: &lies, code: tc.code}, nil
			}
			for _, snd := range prod.senders {
				snd.closeConn(nil) // the next request dials
			}
			prod.mu.Unlock()
			if tc.code == sarama.ErrNoError {
				c.cut()
			}

			err := pub.Publish(topic, eventMessages(1, 1)...)
			if err == nil {
				t.Fatal("publish succeeded, want the answer given as an error")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, core.ErrPermanent); got != tc.permanent {
				t.Fatalf("errors.Is(%v, core.ErrPermanent) = %v, want %v", err, got, tc.permanent)
			}
			if tc.code != sarama.ErrNoError && !errors.Is(err, tc.code) {
				t.Fatalf("error %v does not wrap the broker's reason %v", err, tc.code)
			}
			if want := fmt.Sprintf("topic %q partition 0", topic); !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %s", err, want)
			}
		})
	}
}

// TestRefusalOfSaramaErrors checks that the classification reads errors
// as sarama's own producer reports them, as well as bare broker codes.
func TestRefusalOfSaramaErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		refused bool
	}{
		{"broker code", sarama.ErrMessageSizeTooLarge, true},
		{"producer error", &sarama.ProducerError{Err: sarama.ErrInvalidRecord}, true},
		{"wrapped", fmt.Errorf("publish: %w", &sarama.ProducerError{Err: sarama.ErrInvalidTimestamp}), true},
		{"not the leader", &sarama.ProducerError{Err: sarama.ErrNotLeaderForPartition}, false},
		{"out of brokers", &sarama.ProducerError{Err: sarama.ErrOutOfBrokers}, false},
		{"topic authorization", sarama.ErrTopicAuthorizationFailed, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hint, refused := refusal(tc.err)
			if refused != tc.refused || refused && hint == "" {
				t.Fatalf("refusal(%v) = %q, %v; want refused %v with a hint", tc.err, hint, refused, tc.refused)
			}
		})
	}
}
