package config_test

import (
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"

	_ "github.com/tributary/tributary/connectors/http"
	_ "github.com/tributary/tributary/connectors/webhook"
)

// TestExample loads the annotated example that README.md shows, against the
// shipped connectors.
func TestExample(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "example.yaml"), core.DefaultRegistry)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	if len(cfg.Connectors) != 1 || cfg.Compiled.Rules["legacy_orders"] == nil || !cfg.Compiled.Catalog.Has("com.example.order.received") {
		t.Errorf("config = %+v", cfg)
	}
	if len(cfg.Sinks) != 1 || cfg.Compiled.Sinks["warehouse"].When == nil || cfg.Compiled.Sinks["warehouse"].Map == nil {
		t.Errorf("sinks = %+v, compiled %+v", cfg.Sinks, cfg.Compiled.Sinks)
	}
	red := cfg.Redacted()
	verify := red.Connectors[0].Config.Values["verify"].(map[string]any)
	if s, _ := verify["secrets"].(string); s != config.Redaction {
		t.Errorf("redacted secrets = %#v", verify["secrets"])
	}
}
