package embedded_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := embedded.ParseConfig(core.NewConfig("stream", nil))
	if err != nil {
		t.Fatal(err)
	}
	want := embedded.Config{Path: "", Retention: 168 * time.Hour, Sync: embedded.SyncFull, Compression: embedded.CompressionS2}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
}

func TestConfigure(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"path": "/var/lib/tributary/stream.db", "retention": "24h", "sync": "normal"}
	}
	tests := []struct {
		name   string
		change func(map[string]any)
		paths  []string // field paths of the expected errors; none means valid
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "retention zero keeps forever", change: func(v map[string]any) { v["retention"] = "0" }},
		{name: "retention as integer zero", change: func(v map[string]any) { v["retention"] = 0 }},
		{name: "bad sync enum", change: func(v map[string]any) { v["sync"] = "fast" }, paths: []string{"sync"}},
		{name: "bad compression", change: func(v map[string]any) { v["compression"] = "zstd" }, paths: []string{"compression"}},
		{name: "no compression", change: func(v map[string]any) { v["compression"] = "none" }},
		{name: "bad duration", change: func(v map[string]any) { v["retention"] = "a week" }, paths: []string{"retention"}},
		{name: "negative duration", change: func(v map[string]any) { v["retention"] = "-1h" }, paths: []string{"retention"}},
		{name: "path with query", change: func(v map[string]any) { v["path"] = "/tmp/s.db?mode=ro" }, paths: []string{"path"}},
		{name: "path is a directory", change: func(v map[string]any) { v["path"] = "/var/lib/tributary/" }, paths: []string{"path"}},
		{name: "unknown key", change: func(v map[string]any) { v["fsync"] = true }, paths: []string{"fsync"}},
		{name: "every problem at once", change: func(v map[string]any) { v["sync"] = "off"; v["retention"] = "soon" }, paths: []string{"retention", "sync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := valid()
			tt.change(v)
			err := embedded.New().Configure(core.NewConfig("stream", v))
			var got []string
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *core.FieldError", e)
				}
				got = append(got, fe.Path)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.paths) {
				t.Errorf("error paths = %v (%v), want %v", got, err, tt.paths)
			}
		})
	}
}

// TestSampleConfig loads sample.yaml, the snippet the README shows.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stream struct {
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
		} `yaml:"stream"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Stream.Type != embedded.Type {
		t.Errorf("type = %q, want %q", doc.Stream.Type, embedded.Type)
	}
	spec, ok := core.DefaultRegistry.Stream(doc.Stream.Type)
	if !ok {
		t.Fatalf("stream type %q not registered", doc.Stream.Type)
	}
	if err := spec.New().Configure(core.NewConfig("stream", doc.Stream.Config)); err != nil {
		t.Errorf("configure sample: %v", err)
	}
	for _, f := range spec.Fields {
		if _, ok := doc.Stream.Config[f.Name]; !ok {
			t.Errorf("sample.yaml does not show field %q", f.Name)
		}
	}
}
