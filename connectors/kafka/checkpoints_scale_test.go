package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// fillCheckpoints writes n checkpoint records to the checkpoint topic of
// s, for the connectors conn-0 to conn-(keys-1) in turn, record i at
// position i, then saves one for "active": the state of a topic that
// compaction has not cleaned yet.
func fillCheckpoints(t testing.TB, s *Stream, n, keys int) {
	t.Helper()
	ctx := context.Background()
	cps := s.Checkpoints()
	if err := cps.Save(ctx, core.Checkpoint{Connector: "first"}); err != nil { // creates the topic
		t.Fatalf("save: %v", err)
	}
	pub := s.Publisher()
	const chunk = 20000
	for from := 0; from < n; from += chunk {
		msgs := make([]*message.Message, 0, chunk)
		for i := from; i < min(n, from+chunk); i++ {
			cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: fmt.Sprintf("conn-%d", i%keys), Position: core.Position{Version: 1, Data: fmt.Appendf(nil, "%d", i)}}
			b, _ := json.Marshal(cp)
			m := message.NewMessage(fmt.Sprintf("cp-%d", i), b)
			m.Metadata.Set(core.MetadataKey, cp.Connector)
			msgs = append(msgs, m)
		}
		if err := pub.Publish(s.cfg.CheckpointTopic, msgs...); err != nil {
			t.Fatalf("publish checkpoints: %v", err)
		}
	}
	if err := cps.Save(ctx, core.Checkpoint{Connector: "active", Position: core.Position{Version: 1, Data: []byte("last")}}); err != nil {
		t.Fatalf("save: %v", err)
	}
}

// lastOf returns the position of the last record fillCheckpoints(n, keys)
// writes for conn-k.
func lastOf(n, keys, k int) int { return k + (n-1-k)/keys*keys }

// TestCheckpointStartupReadsTail writes a million checkpoint records, then
// opens a new stream on the topic: loading connectors that saved recently
// reads the topic's last few thousand records, not the million, and keeps
// one checkpoint per connector in memory.
func TestCheckpointStartupReadsTail(t *testing.T) {
	const n, keys = 1_000_000, 100
	topic := "checkpoints-" + watermill.NewShortUUID()
	values := map[string]any{"checkpoint_topic": topic}
	fillCheckpoints(t, openTestStream(t, values), n, keys)

	s := openTestStream(t, values)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cps := s.Checkpoints()
	cp, ok, err := cps.Load(ctx, "active")
	if err != nil || !ok || string(cp.Position.Data) != "last" {
		t.Fatalf("load active = %+v, %v, %v; want the last save", cp, ok, err)
	}
	for _, k := range []int{0, 37, keys - 1} {
		name := fmt.Sprintf("conn-%d", k)
		cp, ok, err := cps.Load(ctx, name)
		want := fmt.Sprint(lastOf(n, keys, k))
		if err != nil || !ok || string(cp.Position.Data) != want {
			t.Fatalf("load %s = %q, %v, %v; want position %s", name, cp.Position.Data, ok, err, want)
		}
	}
	st := s.conn.cps
	st.mu.Lock()
	read, cached := st.read, len(st.cache)
	st.mu.Unlock()
	if read > firstWindow {
		t.Fatalf("start-up read %d records of %d, want at most %d", read, n+2, firstWindow)
	}
	if cached > keys+2 {
		t.Fatalf("%d checkpoints in memory for %d connectors", cached, keys+2)
	}
}

// TestCheckpointLoadReadsBackToOldest: a connector whose last record is
// far back, one whose last record is a tombstone and one that never saved
// are told apart, reading back as far as needed.
func TestCheckpointLoadReadsBackToOldest(t *testing.T) {
	topic := "checkpoints-" + watermill.NewShortUUID()
	values := map[string]any{"checkpoint_topic": topic}
	w := openTestStream(t, values)
	ctx := context.Background()
	if err := w.Checkpoints().Save(ctx, core.Checkpoint{Connector: "old", Position: core.Position{Version: 1, Data: []byte("old")}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Checkpoints().Save(ctx, core.Checkpoint{Connector: "deleted"}); err != nil {
		t.Fatal(err)
	}
	tomb := message.NewMessage("tomb", nil)
	tomb.Metadata.Set(core.MetadataKey, "deleted")
	if err := w.Publisher().Publish(topic, tomb); err != nil {
		t.Fatal(err)
	}
	fillCheckpoints(t, w, 3*firstWindow, 10)

	s := openTestStream(t, values)
	cps := s.Checkpoints()
	tests := []struct {
		name, connector string
		found           bool
		position        string
	}{
		{name: "far back", connector: "old", found: true, position: "old"},
		{name: "tombstone", connector: "deleted"},
		{name: "never saved", connector: "absent"},
		{name: "recent", connector: "conn-3", found: true, position: fmt.Sprint(lastOf(3*firstWindow, 10, 3))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp, ok, err := cps.Load(ctx, tc.connector)
			if err != nil || ok != tc.found || ok && string(cp.Position.Data) != tc.position {
				t.Fatalf("load %s = %q, %v, %v; want found %v at %q", tc.connector, cp.Position.Data, ok, err, tc.found, tc.position)
			}
		})
	}
}

// BenchmarkCheckpointStartup opens a stream on a checkpoint topic of
// 200,000 records and loads a connector that saved last: the time start-up
// takes as records accumulate.
func BenchmarkCheckpointStartup(b *testing.B) {
	topic := "checkpoints-" + watermill.NewShortUUID()
	values := map[string]any{"checkpoint_topic": topic}
	fillCheckpoints(b, openTestStream(b, values), 200_000, 100)
	b.ResetTimer()
	for range b.N {
		r := New()
		if err := r.Configure(core.NewConfig("bench", map[string]any{"brokers": []any{servicetest.Kafka(b)[0]}, "checkpoint_topic": topic})); err != nil {
			b.Fatal(err)
		}
		if err := r.Open(context.Background(), core.Env{Name: "bench"}); err != nil {
			b.Fatal(err)
		}
		if _, ok, err := r.Checkpoints().Load(context.Background(), "active"); err != nil || !ok {
			b.Fatalf("load: %v %v", ok, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = r.Close(ctx)
		cancel()
	}
}
