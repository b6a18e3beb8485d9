package embedded_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

// openStream opens an embedded stream on dir/stream.db with values as its
// configuration, and closes it when the test ends.
func openStream(t testing.TB, dir string, values map[string]any) *embedded.Stream {
	t.Helper()
	s := embedded.New()
	if err := s.Configure(core.NewConfig("stream", values)); err != nil {
		t.Fatalf("configure: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func dbFile(dir string) string { return filepath.Join(dir, "stream.db") }
