package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

// checkStreamWorks publishes a message to topic, reads every message of
// topic back (want, ending with the one published) and saves and loads a
// checkpoint, all on handles taken from s now.
func checkStreamWorks(t *testing.T, s core.Stream, topic string, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := want[len(want)-1]
	if err := s.Publisher().Publish(topic, message.NewMessage(id, []byte(`{}`))); err != nil {
		t.Fatalf("publish: %v", err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	var got []string
	for range want {
		select {
		case m := <-ch:
			m.Ack()
			got = append(got, m.UUID)
		case <-ctx.Done():
			t.Fatalf("read %v, want %v", got, want)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("read %v, want %v", got, want)
	}
	cps := s.Checkpoints()
	if err := cps.Save(ctx, core.Checkpoint{Connector: "orders", Position: core.Position{Version: 1, Data: []byte(id)}}); err != nil {
		t.Fatalf("save checkpoint: %v", err)
	}
	cp, ok, err := cps.Load(ctx, "orders")
	if err != nil || !ok || string(cp.Position.Data) != id {
		t.Fatalf("load checkpoint: %+v ok=%v err=%v, want position %s", cp, ok, err, id)
	}
}

// TestOpenAfterFailedOpen opens a stream whose database path is blocked by
// a regular file, closes it as the runtime does after a failed Open,
// removes the file and opens the same value again: it opens, and
// publishing, reading and checkpoints work.
func TestOpenAfterFailedOpen(t *testing.T) {
	tests := []struct {
		name    string
		blocker string                      // the regular file, below the test's directory
		values  func(string) map[string]any // of the test's directory
		state   string                      // the state directory, below the test's directory
	}{
		{
			name:    "path's directory is a file",
			blocker: "data",
			values: func(dir string) map[string]any {
				return map[string]any{"path": filepath.Join(dir, "data", "stream.db")}
			},
		},
		{
			name:    "state directory is a file",
			blocker: "state",
			values:  func(string) map[string]any { return nil },
			state:   "state",
		},
		{
			name:    "path is a file that is not a database",
			blocker: "stream.db",
			values:  func(dir string) map[string]any { return map[string]any{"path": filepath.Join(dir, "stream.db")} },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			blocker := filepath.Join(dir, tc.blocker)
			if err := os.WriteFile(blocker, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
				t.Fatal(err)
			}
			s := embedded.New()
			if err := s.Configure(core.NewConfig("stream", tc.values(dir))); err != nil {
				t.Fatal(err)
			}
			env := core.Env{Name: "stream"}
			if tc.state != "" {
				env.StateDir = filepath.Join(dir, tc.state)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for attempt := range 2 {
				err := s.Open(ctx, env)
				if err == nil {
					t.Fatalf("open %d succeeded with %s in the way", attempt, blocker)
				}
				if !strings.Contains(err.Error(), blocker) {
					t.Fatalf("open %d: error does not name %s: %v", attempt, blocker, err)
				}
				if err := s.Close(ctx); err != nil {
					t.Fatalf("close after failed open %d: %v", attempt, err)
				}
			}
			if err := os.Remove(blocker); err != nil {
				t.Fatal(err)
			}
			if err := s.Open(ctx, env); err != nil {
				t.Fatalf("open once the path is free: %v", err)
			}
			t.Cleanup(func() {
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			checkStreamWorks(t, s, "orders", "recovered")
		})
	}
}

// TestOpenAfterClose opens, closes and opens one stream value: what was
// stored before is still there, the handles taken before the Close stay
// closed, those taken after the second Open work.
func TestOpenAfterClose(t *testing.T) {
	dir := t.TempDir()
	s := openStream(t, dir, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkStreamWorks(t, s, "orders", "first")
	oldPub, oldCPs := s.Publisher(), s.Checkpoints()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
	env := core.Env{Name: "stream", StateDir: dir}
	if err := s.Open(ctx, env); err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if err := s.Open(ctx, env); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("open of an open stream: %v, want already open", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after reopening: %v", err)
	}
	checkStreamWorks(t, s, "orders", "first", "second")
	if err := oldPub.Publish("orders", message.NewMessage("old", nil)); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("publish on a handle taken before close: %v, want ErrClosed", err)
	}
	if _, _, err := oldCPs.Load(ctx, "orders"); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("load on a handle taken before close: %v, want ErrClosed", err)
	}
}
