package plugin_test

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
)

func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connectors []struct {
			Name   string         `yaml:"name"`
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
		} `yaml:"connectors"`
		Sinks []struct {
			Name   string         `yaml:"name"`
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
		} `yaml:"sinks"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Connectors) != 2 {
		t.Fatalf("%d connectors in sample.yaml, want 2", len(doc.Connectors))
	}
	for _, c := range doc.Connectors {
		if err := connplugin.New().Configure(core.NewConfig(c.Name, c.Config)); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if len(doc.Sinks) != 1 {
		t.Fatalf("%d sinks in sample.yaml, want 1", len(doc.Sinks))
	}
	for _, s := range doc.Sinks {
		if err := connplugin.NewSink().Configure(core.NewConfig(s.Name, s.Config)); err != nil {
			t.Errorf("sink %s: %v", s.Name, err)
		}
	}
}
