package embedded_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

// TestPublishEventsReadsBackAsMessages publishes events as they are and
// as messages, and checks that a subscriber reads both the same way.
func TestPublishEventsReadsBackAsMessages(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	pub := s.Publisher().(core.EventPublisher)
	var events []*core.Event
	for i, subject := range []string{"a", "", "c"} {
		events = append(events, &core.Event{
			ID: core.EventID("c", core.Position{Version: 1, Data: []byte{byte(i)}}, "r"), Source: "/s", SpecVersion: core.SpecVersion,
			Type: "com.example.t", Subject: subject, Time: time.Unix(1700000000+int64(i), 5).UTC(),
			DataContentType: "application/json", PartitionKey: subject, Data: []byte(`{"i":1}`),
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	if err := pub.PublishEvents(ctx, "t", events, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishEvents(ctx, "t", nil, func(err error) { done <- err }); err != nil || <-done != nil {
		t.Fatal("an empty publish did not complete")
	}
	if err := pub.PublishEvents(ctx, "", events, func(error) {}); err == nil {
		t.Error("an empty topic was accepted")
	}
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		select {
		case m := <-msgs:
			want := e.ToMessage()
			if m.UUID != want.UUID || string(m.Payload) != string(want.Payload) || !maps.Equal(m.Metadata, want.Metadata) {
				t.Errorf("read %s %q %q, want %s %q %q", m.UUID, m.Payload, m.Metadata, want.UUID, want.Payload, want.Metadata)
			}
			got, err := core.EventFromMessage(m)
			if err != nil || got.ID != e.ID || !got.Time.Equal(e.Time) || got.Subject != e.Subject {
				t.Errorf("event read back %+v, %v; want %+v", got, err, e)
			}
			m.Ack()
		case <-ctx.Done():
			t.Fatal("event not delivered")
		}
	}
}
