package filesink_test

import (
	"os"
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
)

// TestSampleLoads: sample.yaml, under an in-memory stream, passes the
// sidecar's own loader, which checks the sinks section and configures
// each sink (compiling its expressions).
func TestSampleLoads(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	reg := core.NewRegistry()
	reg.RegisterStream(memstream.Spec(memstream.New()))
	reg.RegisterSink(filesink.Spec())
	doc := append([]byte("stream: {type: memory, topics: {mode: single, name: events}}\n"), data...)
	cfg, err := config.ParseWith("sample.yaml", doc, reg, config.Options{})
	if err != nil {
		t.Fatalf("load sample.yaml: %v", err)
	}
	if len(cfg.Sinks) != 2 {
		t.Fatalf("%d sinks loaded, want 2", len(cfg.Sinks))
	}
	for _, sc := range cfg.Sinks {
		if _, err := sc.NewSink(reg); err != nil {
			t.Errorf("sink %s: %v", sc.Name, err)
		}
	}
}
