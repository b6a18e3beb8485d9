package embedded_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// failingTrigger makes every write of messages to topic "orders" fail, as
// a full disk or an I/O error would, until the returned function is
// called.
func failingTrigger(t *testing.T, dir string) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite", dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TRIGGER fail_orders BEFORE INSERT ON batches WHEN NEW.topic = 'orders'
		BEGIN SELECT RAISE(ABORT, 'injected write failure'); END`); err != nil {
		t.Fatalf("create trigger: %v", err)
	}
	return func() {
		if _, err := db.Exec(`DROP TRIGGER fail_orders`); err != nil {
			t.Fatalf("drop trigger: %v", err)
		}
	}
}

// afterFailures returns once the done callbacks of the publishes failed so
// far have returned: the writer reports a transaction's failures before
// anything it writes later, and a publish to another topic is written.
func afterFailures(t *testing.T, pub message.Publisher) {
	t.Helper()
	if err := pub.Publish("probe", message.NewMessage("probe", []byte(`{}`))); err != nil {
		t.Fatalf("publish to another topic: %v", err)
	}
}

// TestFailureFailsLaterPublishesOfTheTopic fails a publish (its
// transaction fails, or its message is refused) while later publishes to
// its topic are queued behind it or enqueued before its done returns: each
// of them fails too, with an error that is not permanent and names the
// earlier failure, and none is written. A publish with the context the
// failing done cancelled (as the runtime does) returns the context's error
// and its done is never called; a publish made once the done callbacks
// have returned is written.
func TestFailureFailsLaterPublishesOfTheTopic(t *testing.T) {
	tests := []struct {
		name string
		// arm sets the failure of the next publish of first up and
		// returns what undoes it.
		arm       func(t *testing.T, dir string) (first *message.Message, restore func())
		permanent bool
		cause     string // in the error of every failed publish
	}{
		{
			name: "transaction fails",
			arm: func(t *testing.T, dir string) (*message.Message, func()) {
				return message.NewMessage("first", []byte(`{}`)), failingTrigger(t, dir)
			},
			cause: "injected write failure",
		},
		{
			name: "message refused",
			arm: func(t *testing.T, dir string) (*message.Message, func()) {
				// Never written to: its pages stay unbacked.
				return message.NewMessage("first", make([]byte, 1_000_000_000)), func() {}
			},
			permanent: true,
			cause:     `message "first" takes`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStream(t, dir, nil)
			pub := s.Publisher()
			apub := pub.(core.AsyncPublisher)
			if err := pub.Publish("orders", message.NewMessage("warm", []byte(`{}`))); err != nil {
				t.Fatalf("publish: %v", err)
			}
			first, restore := tc.arm(t, dir)

			epoch, cancel := context.WithCancel(context.Background())
			defer cancel()
			firstErr := make(chan error, 1)
			release := make(chan struct{})
			var releaseOnce sync.Once
			// A failing test does not leave the writer stuck in done.
			defer releaseOnce.Do(func() { close(release) })
			err := apub.PublishAsync(epoch, "orders", []*message.Message{first}, func(err error) {
				// As the runtime's done: end the epoch, and return
				// only once the test has published meanwhile.
				cancel()
				firstErr <- err
				<-release
			})
			if err != nil {
				t.Fatalf("publish first: %v", err)
			}
			later := map[string]chan error{}
			publish := func(id string) {
				t.Helper()
				ch := make(chan error, 1)
				later[id] = ch
				if err := apub.PublishAsync(context.Background(), "orders", []*message.Message{message.NewMessage(id, []byte(`{}`))}, func(err error) { ch <- err }); err != nil {
					t.Fatalf("publish %s: %v", id, err)
				}
			}
			// Queued behind the first, or in its transaction.
			publish("behind-1")
			publish("behind-2")
			var err1 error
			select {
			case err1 = <-firstErr:
			case <-time.After(30 * time.Second):
				t.Fatal("no answer for the first publish in 30s")
			}
			if err1 == nil || errors.Is(err1, core.ErrPermanent) != tc.permanent || !strings.Contains(err1.Error(), tc.cause) {
				t.Fatalf("first publish: %v, want a failure saying %q, permanent: %v", err1, tc.cause, tc.permanent)
			}
			// The writer could write again now; the first's done still
			// runs.
			restore()
			publish("during")
			var called atomic.Bool
			err = apub.PublishAsync(epoch, "orders", []*message.Message{message.NewMessage("cancelled", []byte(`{}`))}, func(error) { called.Store(true) })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("publish with the cancelled context: %v, want %v", err, context.Canceled)
			}
			releaseOnce.Do(func() { close(release) })

			for id, ch := range later {
				var err error
				select {
				case err = <-ch:
				case <-time.After(30 * time.Second):
					t.Fatalf("no answer for %s in 30s", id)
				}
				if err == nil {
					t.Fatalf("%s written after the earlier failure, want it failed", id)
				}
				if errors.Is(err, core.ErrPermanent) {
					t.Errorf("%s: %v wraps core.ErrPermanent; only the refused message is at fault", id, err)
				}
				if !strings.Contains(err.Error(), tc.cause) {
					t.Errorf("%s: %v, want it to say %q", id, err, tc.cause)
				}
				if want := `topic "orders": an earlier publish to the topic failed`; id == "during" && !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %v, want it to say %q", id, err, want)
				}
			}
			afterFailures(t, pub)
			checkStreamWorks(t, s, "orders", "warm", "after")
			if called.Load() {
				t.Fatal("done called for a publish that returned an error")
			}
		})
	}
}

// TestPublishAfterFailedPublish publishes with Publish, which waits, after
// a Publish that failed: the failure does not fail the next call.
func TestPublishAfterFailedPublish(t *testing.T) {
	tests := []struct {
		name string
		// fail makes the next publish of the returned message fail,
		// and returns what undoes it.
		fail func(t *testing.T, dir string) (*message.Message, func())
	}{
		{
			name: "transaction fails",
			fail: func(t *testing.T, dir string) (*message.Message, func()) {
				return message.NewMessage("failed", []byte(`{}`)), failingTrigger(t, dir)
			},
		},
		{
			name: "message refused",
			fail: func(t *testing.T, dir string) (*message.Message, func()) {
				return message.NewMessage("failed", make([]byte, 1_000_000_000)), func() {}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStream(t, dir, nil)
			pub := s.Publisher()
			m, restore := tc.fail(t, dir)
			if err := pub.Publish("orders", m); err == nil {
				t.Fatal("publish succeeded, want it failed")
			}
			restore()
			checkStreamWorks(t, s, "orders", "next")
		})
	}
}
