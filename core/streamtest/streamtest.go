// Package streamtest holds the checks that the streams' subscriber tests
// share: receiving the messages a subscription must deliver next, in
// order, and checking that it delivers nothing more for a while.
package streamtest

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Receive receives messages with the ids want, in order, without acking
// them, waiting at most within for each; it fails at the first other id,
// a closed channel or a wait past within.
func Receive(t testing.TB, msgs <-chan *message.Message, within time.Duration, want ...string) []*message.Message {
	t.Helper()
	var got []*message.Message
	for _, id := range want {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("subscription ended, want %s", id)
			}
			if m.UUID != id {
				t.Fatalf("received %s, want %s", m.UUID, id)
			}
			got = append(got, m)
		case <-time.After(within):
			t.Fatalf("nothing received in %s, want %s", within, id)
		}
	}
	return got
}

// Quiet fails when a message arrives, or the subscription ends, within
// d.
func Quiet(t testing.TB, msgs <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if ok {
			t.Fatalf("received %s, want nothing more for now", m.UUID)
		}
		t.Fatal("subscription ended, want it waiting")
	case <-time.After(d):
	}
}
