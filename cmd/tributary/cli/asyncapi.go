package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// withAsyncAPI adds `asyncapi` to the catalog command.
func withAsyncAPI(catalog *cobra.Command, reg *core.Registry) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "asyncapi -c FILE",
		Short: "Print an AsyncAPI 3.0 document of the stream: a channel per topic, a message per event type with its schema and CloudEvents headers",
		Long: "Print an AsyncAPI 3.0 document (JSON) of the stream the configuration describes: one channel per topic (and the " +
			"dead-letter topic), one message per event type with its JSON Schema as the payload, its CloudEvents binary-mode " +
			"headers (ce_*), and Kafka bindings (the record key is the partition key). The sidecar sends on every channel.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			doc, err := AsyncAPI(cfg)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			return err
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	catalog.AddCommand(cmd)
	return catalog
}

var asyncAPIUnsafe = regexp.MustCompile(`[^A-Za-z0-9_\-]`)

// asyncAPIID makes s usable as a key of channels, messages and operations.
func asyncAPIID(s string) string { return asyncAPIUnsafe.ReplaceAllString(s, "_") }

// AsyncAPI returns the AsyncAPI 3.0 document of cfg's stream.
func AsyncAPI(cfg *config.Config) (map[string]any, error) {
	messages := map[string]any{}
	channels := map[string]any{}
	operations := map[string]any{}
	types := knownTypes(cfg)
	byTopic := map[string][]string{}
	var topics []string
	for _, t := range types {
		topic := cfg.Stream.Topics.Topic(t)
		if _, ok := byTopic[topic]; !ok {
			topics = append(topics, topic)
		}
		byTopic[topic] = append(byTopic[topic], t)
	}
	schemas := map[string]core.EventType{}
	for _, et := range cfg.Catalog {
		schemas[et.Type] = et
	}
	for _, t := range types {
		msg, err := eventMessage(cfg, t, schemas[t])
		if err != nil {
			return nil, err
		}
		messages[asyncAPIID(t)] = msg
	}
	messages[asyncAPIID(runtime.DeadLetterType)] = deadLetterMessageDoc()
	topics = append(topics, cfg.Stream.DeadLetterTopic)
	byTopic[cfg.Stream.DeadLetterTopic] = append(byTopic[cfg.Stream.DeadLetterTopic], runtime.DeadLetterType)
	for _, topic := range topics {
		id := asyncAPIID(topic)
		chMsgs := map[string]any{}
		var opMsgs []any
		for _, t := range byTopic[topic] {
			mid := asyncAPIID(t)
			chMsgs[mid] = map[string]any{"$ref": "#/components/messages/" + mid}
			opMsgs = append(opMsgs, map[string]any{"$ref": "#/channels/" + id + "/messages/" + mid})
		}
		channels[id] = map[string]any{
			"address":  topic,
			"messages": chMsgs,
		}
		operations["send_"+id] = map[string]any{
			"action":   "send",
			"summary":  "The sidecar publishes to " + topic + ".",
			"channel":  map[string]any{"$ref": "#/channels/" + id},
			"messages": opMsgs,
		}
	}
	doc := map[string]any{
		"asyncapi": "3.0.0",
		"info": map[string]any{
			"title":       "Tributary stream of " + filepath.Base(cfg.File),
			"version":     "1",
			"description": "Events a Tributary sidecar publishes, as CloudEvents 1.0 in binary mode: attributes in ce_* headers, data as the value, the partition key as the record key.",
		},
		"defaultContentType": "application/json",
		"channels":           channels,
		"operations":         operations,
		"components":         map[string]any{"messages": messages},
	}
	if servers := kafkaServers(cfg); len(servers) > 0 {
		doc["servers"] = servers
	}
	return doc, nil
}

// kafkaServers lists the brokers of a Kafka stream.
func kafkaServers(cfg *config.Config) map[string]any {
	if cfg.Stream.Type != "kafka" {
		return nil
	}
	brokers, _ := cfg.Stream.Config.Values["brokers"].([]any)
	out := map[string]any{}
	for i, b := range brokers {
		host, ok := b.(string)
		if !ok {
			continue
		}
		out[fmt.Sprintf("broker%d", i+1)] = map[string]any{"host": host, "protocol": "kafka"}
	}
	return out
}

// eventMessage is the message of event type t: its schema (from the
// catalog, or any object when the catalog does not declare it) and its
// headers.
func eventMessage(cfg *config.Config, t string, et core.EventType) (map[string]any, error) {
	payload, err := eventSchema(cfg, et)
	if err != nil {
		return nil, err
	}
	headers := ceHeaders(t)
	if ds := cfg.Compiled.Catalog.DataSchema(t); ds != "" {
		headers["properties"].(map[string]any)["ce_dataschema"] = map[string]any{"type": "string", "const": ds}
	}
	msg := map[string]any{
		"name":        t,
		"title":       t,
		"contentType": "application/json",
		"headers":     headers,
		"payload":     payload,
		"bindings": map[string]any{"kafka": map[string]any{
			"key":            map[string]any{"type": "string", "description": "the partition key (ce_partitionkey): all events of one business key on one partition, in order"},
			"bindingVersion": "0.5.0",
		}},
	}
	if et.Version != "" {
		msg["summary"] = "Version " + et.Version + " of " + t + "."
	}
	if et.Description != "" {
		msg["description"] = et.Description
	}
	return msg, nil
}

// eventSchema returns et's JSON Schema, read from its file when it has one.
func eventSchema(cfg *config.Config, et core.EventType) (any, error) {
	switch {
	case et.Schema != nil:
		// YAML maps decode with any keys; a JSON round trip makes them
		// strings.
		b, err := json.Marshal(et.Schema)
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", et.Type, err)
		}
		var s any
		err = json.Unmarshal(b, &s)
		return s, err
	case et.SchemaFile != "":
		p := et.SchemaFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(cfg.File), p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", et.Type, err)
		}
		var s any
		if err := yaml.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("schema of %s in %s: %w", et.Type, p, err)
		}
		b, err = json.Marshal(s)
		if err != nil {
			return nil, fmt.Errorf("schema of %s in %s: %w", et.Type, p, err)
		}
		err = json.Unmarshal(b, &s)
		return s, err
	}
	return map[string]any{"type": "object", "description": "the catalog declares no schema for this type"}, nil
}

// ceHeaders is the schema of the CloudEvents binary-mode headers of an
// event of type t.
func ceHeaders(t string) map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	props := map[string]any{
		core.HeaderID:           str("the event id, derived from the connector, the position and the rule: equal ids are duplicates"),
		core.HeaderSource:       str("the connector, /tributary/CONNECTOR"),
		core.HeaderSpecVersion:  map[string]any{"type": "string", "const": core.SpecVersion},
		core.HeaderType:         map[string]any{"type": "string", "const": t},
		core.HeaderSubject:      str("what the event is about, such as the order id"),
		core.HeaderTime:         map[string]any{"type": "string", "format": "date-time"},
		core.HeaderPartitionKey: str("the business key; also the record key"),
		core.HeaderTraceParent:  str("W3C trace context (distributed tracing extension)"),
		core.HeaderTraceState:   str("W3C trace state that goes with the traceparent (distributed tracing extension)"),
		core.HeaderContentType:  map[string]any{"type": "string", "const": "application/json"},
	}
	req := []any{core.HeaderID, core.HeaderSource, core.HeaderSpecVersion, core.HeaderType}
	return map[string]any{"type": "object", "required": req, "properties": props}
}

// deadLetterMessageDoc is the message of the dead-letter topic.
func deadLetterMessageDoc() map[string]any {
	str := map[string]any{"type": "string"}
	return map[string]any{
		"name":        runtime.DeadLetterType,
		"title":       "Dead letter",
		"description": "What could not be mapped, validated, published or delivered, with the reason, the rule or sink, and the raw change or event.",
		"contentType": "application/json",
		"headers":     ceHeaders(runtime.DeadLetterType),
		"payload": map[string]any{
			"type":     "object",
			"required": []any{"reason", "error"},
			"properties": map[string]any{
				"connector": str, "rule": str, "sink": str, "reason": str, "error": str, "response": str, "event_type": str,
				"data":   map[string]any{"description": "the data as the rule built it"},
				"change": map[string]any{"type": "object", "description": "the raw change"},
				"event":  map[string]any{"type": "object", "description": "a sink's: the event as it was on the stream, structured"},
			},
		},
		"bindings": map[string]any{"kafka": map[string]any{"key": map[string]any{"type": "string", "description": "the connector or sink"}, "bindingVersion": "0.5.0"}},
	}
}
