package kafka

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// keyed returns a message with id and the partition key "k".
func keyed(id string, payload []byte) *message.Message {
	e := core.Event{ID: id, Source: "tributary/test", SpecVersion: core.SpecVersion, Type: "com.example.thing.happened.v1", Data: payload, PartitionKey: "k"}
	return e.ToMessage()
}

// TestFailureFailsLaterRecordsOfThePartition fails a call on a partition
// finally (its retries used up, or refused) while later calls of the same
// key are queued behind it or enqueued before its done returns: each of
// them fails too, with an error that is not permanent and names the
// earlier failure, and none is stored. A call made with the context the
// failing done cancelled (as the runtime does) returns the context's
// error and its done is never called; a call made after the done returned
// is stored. The broker holds the calls after the failed one, the failed
// one only when it stored what it was told failed.
func TestFailureFailsLaterRecordsOfThePartition(t *testing.T) {
	tests := []struct {
		name string
		// arm sets the failure up for the next call, whose message it
		// returns. gated: the producer sends it and waits for the answer
		// until the gate opens.
		arm       func(t *testing.T, s *Stream, gate <-chan struct{}) (first *message.Message, gated bool)
		permanent bool
		cause     error // wrapped by the later calls' errors, when set
		stored    bool  // the broker stores the failed call's record
	}{
		{
			name: "retries used up",
			arm: func(t *testing.T, s *Stream, gate <-chan struct{}) (*message.Message, bool) {
				var mu sync.Mutex
				lies := 1
				prod := s.conn.pub.prod
				prod.mu.Lock()
				defer prod.mu.Unlock()
				prod.opts.maxRetries = 0
				prod.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					nc, err := dialNet(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return &lyingConn{Conn: nc, mu: &mu, lies: &lies, code: sarama.ErrNotEnoughReplicas, gate: gate}, nil
				}
				for _, snd := range prod.senders {
					snd.closeConn(nil) // the next request dials
				}
				return keyed("first", []byte(`{}`)), true
			},
			cause:  sarama.ErrNotEnoughReplicas,
			stored: true,
		},
		{
			name: "refused before sending",
			arm: func(t *testing.T, s *Stream, gate <-chan struct{}) (*message.Message, bool) {
				return keyed("first", []byte(`"`+strings.Repeat("x", 1_100_000)+`"`)), false
			},
			permanent: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openTestStream(t, map[string]any{"topic_partitions": 1})
			topic := "ordered-" + watermill.NewShortUUID()
			pub := s.Publisher().(*Publisher)
			// The topic exists and the producer knows its leader first.
			if err := pub.Publish(topic, keyed("warm", []byte(`{}`))); err != nil {
				t.Fatalf("publish: %v", err)
			}
			prod := s.conn.pub.prod
			prod.mu.Lock()
			pt := prod.topics[topic][0]
			prod.mu.Unlock()

			gate := make(chan struct{})
			first, gated := tc.arm(t, s, gate)
			epoch, cancel := context.WithCancel(context.Background())
			defer cancel()
			firstErr := make(chan error, 1)
			release := make(chan struct{})
			var releaseOnce sync.Once
			// A failing test does not leave the sender stuck in done.
			defer releaseOnce.Do(func() { close(release) })
			err := pub.PublishAsync(epoch, topic, []*message.Message{first}, func(err error) {
				// As the runtime's done: end the epoch, and return
				// only once the test has published meanwhile.
				cancel()
				firstErr <- err
				<-release
			})
			if err != nil {
				t.Fatalf("publish %s: %v", first.UUID, err)
			}
			if gated {
				waitFor(t, prod, "the first call in flight", func() bool { return pt.inflight })
			}

			later := map[string]chan error{}
			publish := func(ctx context.Context, id string) error {
				ch := make(chan error, 1)
				later[id] = ch
				return pub.PublishAsync(ctx, topic, []*message.Message{keyed(id, []byte(`{}`))}, func(err error) { ch <- err })
			}
			// Queued behind the first call (in flight when gated).
			for _, id := range []string{"behind-1", "behind-2"} {
				if err := publish(context.Background(), id); err != nil {
					t.Fatalf("publish %s: %v", id, err)
				}
			}
			close(gate)
			var err1 error
			select {
			case err1 = <-firstErr:
			case <-time.After(time.Minute):
				t.Fatal("no answer for the first call in a minute")
			}
			if err1 == nil || errors.Is(err1, core.ErrPermanent) != tc.permanent {
				t.Fatalf("first call: %v, want a failure, permanent: %v", err1, tc.permanent)
			}
			// While the first call's done runs.
			if err := publish(context.Background(), "during"); err != nil {
				t.Fatalf("publish during the failing done: %v", err)
			}
			var called atomic.Bool
			err = pub.PublishAsync(epoch, topic, []*message.Message{keyed("cancelled", []byte(`{}`))}, func(error) { called.Store(true) })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("publish with the cancelled context: %v, want %v", err, context.Canceled)
			}
			releaseOnce.Do(func() { close(release) })

			for id, ch := range later {
				var err error
				select {
				case err = <-ch:
				case <-time.After(time.Minute):
					t.Fatalf("no answer for %s in a minute", id)
				}
				if err == nil {
					t.Fatalf("%s stored after the earlier failure, want it failed", id)
				}
				if errors.Is(err, core.ErrPermanent) {
					t.Errorf("%s: %v wraps core.ErrPermanent; only the refused record is at fault", id, err)
				}
				if want := "partition 0: an earlier batch of the partition failed"; !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %v, want it to say %q", id, err, want)
				}
				if tc.cause != nil && !errors.Is(err, tc.cause) {
					t.Errorf("%s: %v does not wrap the earlier failure %v", id, err, tc.cause)
				}
			}
			// Every done has returned once the partition is no longer
			// poisoned; what comes then is stored.
			waitFor(t, prod, "the partition's poison lifted", func() bool { return pt.poisoned == 0 })
			if err := pub.Publish(topic, keyed("after", []byte(`{}`))); err != nil {
				t.Fatalf("publish after the failing done returned: %v", err)
			}
			want := []string{"warm", "after"}
			if tc.stored {
				want = []string{"warm", "first", "after"}
			}
			var got []string
			for _, m := range readAll(t, s, topic, len(want)) {
				got = append(got, m.UUID)
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("stored %v, want %v", got, want)
			}
			if called.Load() {
				t.Fatal("done called for a publish that returned an error")
			}
		})
	}
}

// waitFor waits, a minute at most, until cond, called with p locked,
// holds.
func waitFor(t *testing.T, p *producer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
