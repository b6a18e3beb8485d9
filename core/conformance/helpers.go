package conformance

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/tributary/tributary/core"
)

// Helpers for connectors' own tests, beside the kit.

// TestEnv returns an Env named name with a discarding logger and a fresh
// temporary state directory.
func TestEnv(t TB, name string) core.Env {
	return core.Env{Name: name, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), StateDir: t.TempDir()}
}

// Open opens s from `from` within 15 seconds, failing t on error, and closes
// it when the test ends.
func Open(t TB, s core.Source, env core.Env, from core.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Open(ctx, env, from); err != nil {
		t.Fatalf("Open(from %s): %v", from, err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

// ReadN reads until at least n changes arrived, failing t after 15 seconds.
func ReadN(t TB, s core.Source, n int) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []core.Change
	for len(got) < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d changes: %v", len(got), n, err)
		}
		got = append(got, b...)
	}
	return got
}

// Settle returns whatever s reads within d. A read error before d passes
// fails t.
func Settle(t TB, s core.Source, d time.Duration) []core.Change {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var got []core.Change
	for {
		b, err := s.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				t.Fatalf("read: %v", err)
			}
			return got
		}
		got = append(got, b...)
	}
}
