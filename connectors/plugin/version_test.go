package plugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
)

// A plugin that answers hello with a version the sidecar does not speak
// stops the connector with an error that says so.
func TestProtocolMismatch(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "future-plugin")
	script := "#!/bin/sh\nread line\necho '{\"type\":\"hello\",\"protocol\":9}'\nread line\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	src := connplugin.New()
	cfg := map[string]any{"command": exe, "transport": "jsonl", "start_timeout": "20s"}
	if err := src.Configure(core.NewConfig("future", cfg)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := src.Open(ctx, core.Env{StateDir: t.TempDir()}, core.Position{})
	_ = src.Close(ctx)
	want := "speaks protocol 9, this sidecar speaks [2 1] over jsonl: rebuild or upgrade the plugin"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open = %v, want an error containing %q", err, want)
	}
	if !errors.Is(err, core.ErrFatal) {
		t.Errorf("Open = %v, want a fatal error", err)
	}
}
