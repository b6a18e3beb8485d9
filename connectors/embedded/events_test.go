package embedded_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/tributary/tributary/connectors/embedded"
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
	events[0].TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	events[0].TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
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
	for i, e := range events {
		select {
		case m := <-msgs:
			want := e.ToMessage()
			want.Metadata[core.MetadataPosition] = core.StreamPosition("t", 0, int64(i+1))
			if m.UUID != want.UUID || string(m.Payload) != string(want.Payload) || !maps.Equal(m.Metadata, want.Metadata) {
				t.Errorf("read %s %q %q, want %s %q %q", m.UUID, m.Payload, m.Metadata, want.UUID, want.Payload, want.Metadata)
			}
			got, err := core.EventFromMessage(m)
			if err != nil || got.ID != e.ID || !got.Time.Equal(e.Time) || got.Subject != e.Subject ||
				got.TraceParent != e.TraceParent || got.TraceState != e.TraceState {
				t.Errorf("event read back %+v, %v; want %+v", got, err, e)
			}
			m.Ack()
		case <-ctx.Done():
			t.Fatal("event not delivered")
		}
	}
}

// TestCompressionModesShareAFile writes a file uncompressed, then
// compressed, and reads every message back from both kinds of batch.
func TestCompressionModesShareAFile(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	publish := func(mode string, from, n int) {
		s := embedded.New()
		if err := s.Configure(core.NewConfig("stream", map[string]any{"compression": mode})); err != nil {
			t.Fatal(err)
		}
		if err := s.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
			t.Fatal(err)
		}
		var msgs []*message.Message
		for i := from; i < from+n; i++ {
			m := message.NewMessage(fmt.Sprintf("id-%d", i), []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 64))))
			m.Metadata.Set(core.HeaderType, "com.example.t")
			msgs = append(msgs, m)
		}
		if err := s.Publisher().Publish("t", msgs...); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	publish("none", 0, 300)
	publish("s2", 300, 300)
	info, err := os.Stat(dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	// The first publish stored its batch as it is (format 1), the second
	// compressed (format 2).
	db, err := sql.Open("sqlite", dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	var formats string
	err = db.QueryRow(`SELECT group_concat(hex(substr(messages, 1, 1)), ',') FROM (SELECT messages FROM batches ORDER BY first_offset)`).Scan(&formats)
	db.Close()
	if err != nil || formats != "01,02" {
		t.Fatalf("batch formats %q, %v; want 01,02", formats, err)
	}
	s := openStream(t, dir, map[string]any{"compression": "none"})
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		select {
		case m := <-ch:
			want := fmt.Sprintf(`{"n":%d,`, i)
			if m.UUID != fmt.Sprintf("id-%d", i) || !strings.HasPrefix(string(m.Payload), want) || m.Metadata.Get(core.HeaderType) != "com.example.t" {
				t.Fatalf("message %d: %s %s %v", i, m.UUID, m.Payload, m.Metadata)
			}
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("message %d not delivered (file %d bytes)", i, info.Size())
		}
	}
}
