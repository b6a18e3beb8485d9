package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// asyncAPISchema compiles the vendored AsyncAPI 3.0.0 JSON Schema.
func asyncAPISchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "asyncapi", "3.0.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile the AsyncAPI schema: %v", err)
	}
	return sch
}

// TestCatalogAsyncAPI checks `catalog asyncapi` documents against the
// AsyncAPI 3.0.0 specification's JSON Schema, for the quickstart (the
// embedded stream, per-type topics), a Kafka stream and a single topic:
// a channel per topic and the dead-letter topic, a message per type with
// its schema, CloudEvents headers and Kafka key binding.
func TestCatalogAsyncAPI(t *testing.T) {
	sch := asyncAPISchema(t)
	dir := t.TempDir()
	base := strings.NewReplacer("%s", "127.0.0.1:0").Replace(sidecarConfig)
	kafka := strings.Replace(base, "stream: {type: embedded}", `stream:
  type: kafka
  topics: {mode: per_type, prefix: "prod."}
  config: {brokers: ["kafka-1:9092", "kafka-2:9092"]}`, 1)
	single := strings.Replace(base, "stream: {type: embedded}", `stream:
  type: embedded
  topics: {mode: single, name: events}`, 1)
	for _, tt := range []struct {
		name, file, config string
		channels           []string
		servers            int
	}{
		{name: "quickstart", file: "../../../examples/quickstart/tributary.yaml", channels: []string{"com.example.order.placed", "tributary.deadletter"}},
		{name: "kafka", config: kafka, channels: []string{"prod.com.example.order.placed", "tributary.deadletter"}, servers: 2},
		{name: "single topic", config: single, channels: []string{"events", "tributary.deadletter"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				file = filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
				if err := os.WriteFile(file, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errOut := runCLI(t, "catalog", "asyncapi", "-c", file)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Fatalf("the document is not valid AsyncAPI 3.0.0: %v\n%s", err, out)
			}
			var doc struct {
				Channels map[string]struct {
					Address  string         `json:"address"`
					Messages map[string]any `json:"messages"`
				} `json:"channels"`
				Servers    map[string]any `json:"servers"`
				Components struct {
					Messages map[string]struct {
						Name    string `json:"name"`
						Payload struct {
							Properties map[string]any `json:"properties"`
						} `json:"payload"`
						Headers struct {
							Properties map[string]any `json:"properties"`
						} `json:"headers"`
						Bindings struct {
							Kafka struct {
								Key map[string]any `json:"key"`
							} `json:"kafka"`
						} `json:"bindings"`
					} `json:"messages"`
				} `json:"components"`
			}
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatal(err)
			}
			var addrs []string
			for _, c := range doc.Channels {
				addrs = append(addrs, c.Address)
			}
			for _, want := range tt.channels {
				if !strings.Contains(strings.Join(addrs, " "), want) {
					t.Errorf("channels %v lack %s", addrs, want)
				}
			}
			if len(doc.Channels) != len(tt.channels) || len(doc.Servers) != tt.servers {
				t.Errorf("%d channels and %d servers, want %d and %d", len(doc.Channels), len(doc.Servers), len(tt.channels), tt.servers)
			}
			m := doc.Components.Messages["com_example_order_placed"]
			if m.Name != "com.example.order.placed" || m.Payload.Properties["order_id"] == nil || m.Headers.Properties["ce_type"] == nil || m.Bindings.Kafka.Key == nil {
				t.Errorf("the message of com.example.order.placed: %+v", m)
			}
		})
	}
}

// TestAsyncAPISchemaRejects shows the vendored schema is a real check: a
// document without info, or with an operation that neither sends nor
// receives, fails it.
func TestAsyncAPISchemaRejects(t *testing.T) {
	sch := asyncAPISchema(t)
	for _, tt := range []struct{ name, doc string }{
		{name: "no info", doc: `{"asyncapi": "3.0.0"}`},
		{name: "bad action", doc: `{"asyncapi": "3.0.0", "info": {"title": "x", "version": "1"}, "channels": {"c": {"address": "c"}}, "operations": {"o": {"action": "publish", "channel": {"$ref": "#/channels/c"}}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tt.doc)))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err == nil {
				t.Errorf("the schema accepted %s", tt.doc)
			}
		})
	}
}
