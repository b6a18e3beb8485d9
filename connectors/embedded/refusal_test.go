package embedded_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// TestTooLargeMessageIsPermanent publishes a message larger than one
// SQLite value holds beside calls of small messages: its call fails, none
// of its messages written, with an error wrapping core.ErrPermanent that
// names the message and the limit; the call before it is stored, the
// call after it fails (not permanently: it must not overtake the refused
// one), and a call made once the failures are reported is stored.
func TestTooLargeMessageIsPermanent(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	pub := s.Publisher().(core.AsyncPublisher)
	// Never written to: the pages of a fresh allocation this large stay
	// unbacked, so the test costs no gigabyte of memory.
	huge := message.NewMessage("huge", make([]byte, 1_000_000_000))
	calls := [][]*message.Message{
		{message.NewMessage("a1", []byte(`{}`))},
		{message.NewMessage("b1", []byte(`{}`)), huge, message.NewMessage("b2", []byte(`{}`))},
		{message.NewMessage("c1", []byte(`{}`))},
	}
	errs := make([]chan error, len(calls))
	for i, msgs := range calls {
		errs[i] = make(chan error, 1)
		if err := pub.PublishAsync(context.Background(), "orders", msgs, func(err error) { errs[i] <- err }); err != nil {
			t.Fatalf("publish call %d: %v", i, err)
		}
	}
	for i, ch := range errs {
		var err error
		select {
		case err = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("call %d: no answer in 30s", i)
		}
		switch {
		case i == 0 && err != nil:
			t.Fatalf("call %d: %v, want it stored", i, err)
		case i == 2 && (err == nil || errors.Is(err, core.ErrPermanent)):
			t.Fatalf("call %d after the refused one: %v, want a failure that is not permanent", i, err)
		}
		if i != 1 {
			continue
		}
		if !errors.Is(err, core.ErrPermanent) {
			t.Fatalf("call with a 1 GB message: %v, want an error wrapping core.ErrPermanent", err)
		}
		for _, want := range []string{`topic "orders"`, `message "huge"`, "999000000 bytes"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %s", err, want)
			}
		}
		t.Logf("refused: %v", err)
	}
	huge.Payload = nil
	afterFailures(t, s.Publisher())
	checkStreamWorks(t, s, "orders", "a1", "later")
}
