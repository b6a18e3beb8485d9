package config_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"

	_ "github.com/tributary/tributary/connectors/all"
)

var update = flag.Bool("update", false, "rewrite tributary.schema.json")

// TestSchemaUpToDate keeps the committed schema in step with the shipped
// connectors' field declarations.
func TestSchemaUpToDate(t *testing.T) {
	got, err := config.Schema(core.DefaultRegistry)
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	const file = "tributary.schema.json"
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read committed schema: %v (create it with `make schema`)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("config/%s is stale: run `make schema` (or go test ./config -run TestSchemaUpToDate -update)", file)
	}
	again, _ := config.Schema(core.DefaultRegistry)
	if !bytes.Equal(got, again) {
		t.Error("Schema output differs between two calls: it must be deterministic")
	}
}

// TestSchemaAcceptsExample checks the README's example against the schema
// of the shipped connectors.
func TestSchemaAcceptsExample(t *testing.T) {
	doc, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := compileSchema(t, core.DefaultRegistry).Validate(asJSON(t, string(doc))); err != nil {
		t.Errorf("testdata/example.yaml fails the schema: %v", err)
	}
}

// compileSchema compiles the schema generated for reg.
func compileSchema(t *testing.T, reg *core.Registry) *jsonschema.Schema {
	t.Helper()
	raw, err := config.Schema(reg)
	if err != nil {
		t.Fatalf("Schema: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("tributary.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("tributary.schema.json")
	if err != nil {
		t.Fatalf("Schema does not compile: %v", err)
	}
	return s
}

// asJSON decodes a YAML document into the values a JSON parser would give.
func asJSON(t *testing.T, doc string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaMatchesLoader(t *testing.T) {
	s := compileSchema(t, testRegistry())
	if err := s.Validate(asJSON(t, validYAML)); err != nil {
		t.Fatalf("the valid configuration fails the schema: %v", err)
	}
	tests := []struct {
		name, old, new string
		valid          bool
	}{
		{name: "unknown top-level key", old: "shutdown:\n", new: "shutdwn:\n"},
		{name: "unknown nested key", old: "  address: 127.0.0.1:8080", new: "  adress: 127.0.0.1:8080"},
		{name: "unknown key in connector config", old: "      batch: 50", new: "      bach: 50"},
		{name: "unknown connector type", old: "    type: webhook\n    config:\n", new: "    type: webhok\n    config:\n"},
		{name: "missing required config field", old: "      secret: s3cret\n", new: ""},
		{name: "bad enum", old: "level: info", new: "level: verbose"},
		{name: "bad duration", old: "read_timeout: 5s", new: "read_timeout: abc"},
		{name: "bad int", old: "batch: 50", new: "batch: many"},
		{name: "stream config of another type", old: "    fsync: true\n", new: "    brokers: [a]\n"},
		{name: "missing connector name", old: "  - name: billing\n    type: webhook\n", new: "  - type: webhook\n"},
		{name: "version 2", old: "version: 1", new: "version: 2"},
		{name: "reference in an int field", old: "batch: 50", new: "batch: ${BATCH}", valid: true},
		{name: "reference in a duration field", old: "interval: 10s", new: "interval: ${INTERVAL:-5s}", valid: true},
		{name: "compound duration", old: "interval: 10s", new: "interval: 1h30m0.5s", valid: true},
		{name: "other stream type", old: "  type: embedded\n  topics: {mode: per_type, prefix: \"acme.\"}\n  config:\n    fsync: true\n", new: "  type: kafka\n  config: {brokers: [a:9092]}\n", valid: true},
		{name: "default stream type without type", old: "  type: embedded\n", new: "", valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(asJSON(t, edit(t, validYAML, tt.old, tt.new)))
			if tt.valid && err != nil {
				t.Errorf("schema rejects a valid configuration: %v", err)
			}
			if !tt.valid && err == nil {
				t.Error("schema accepts an invalid configuration")
			}
		})
	}
}

func TestSchemaDocumentsFields(t *testing.T) {
	raw, err := config.Schema(testRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"$schema": "https://json-schema.org/draft/2020-12/schema"`,
		`"description": "Shared secret for signatures. Secret: give it by reference, such as ${file:/run/secrets/name}."`,
		`"description": "Old switch. Deprecated: use mode instead"`,
		`"default": "5s"`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("schema lacks %s", want)
		}
	}
	var doc struct {
		Properties struct {
			Connectors struct {
				Items struct {
					Properties struct {
						Type struct {
							Enum []string `json:"enum"`
						} `json:"type"`
					} `json:"properties"`
					AllOf []any `json:"allOf"`
				} `json:"items"`
			} `json:"connectors"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	items := doc.Properties.Connectors.Items
	if strings.Join(items.Properties.Type.Enum, ",") != "poller,webhook" || len(items.AllOf) != 2 {
		t.Errorf("connector types = %v, %d cases; want poller,webhook and 2 cases", items.Properties.Type.Enum, len(items.AllOf))
	}
}
