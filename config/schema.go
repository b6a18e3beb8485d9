package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/tributary/tributary/core"
)

// durationPattern matches a Go duration ("30s", "1h30m") or a value that
// holds a ${...} reference.
const durationPattern = `^(?:[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+|[-+]?0)$|\$\{`

// Schema returns the JSON Schema (draft 2020-12) of the configuration file
// for the types registered in reg (core.DefaultRegistry when nil): every key
// with its type, documentation, default and allowed values, and the config
// block of each stream, connector and sink type, selected by the sibling
// "type".
// Editors use it for completion and inline checks. The output is
// deterministic: keys are sorted.
func Schema(reg *core.Registry) ([]byte, error) {
	if reg == nil {
		reg = core.DefaultRegistry
	}
	root := objectSchema(fileFields())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "urn:tributary:config:1"
	root["title"] = "Tributary configuration"
	root["description"] = "The configuration file of the Tributary sidecar: the shared stream, the event catalog, the connectors that watch legacy systems and the sinks that deliver events."
	root["$defs"] = map[string]any{
		"reference": map[string]any{
			"type":        "string",
			"pattern":     `\$\{`,
			"description": "A value given by reference: ${VAR}, ${VAR:-default} or ${file:/path/to/secret}.",
		},
	}
	props := root["properties"].(map[string]any)
	version := props["version"].(map[string]any)
	delete(version, "anyOf")
	version["const"] = 1

	stream := props["stream"].(map[string]any)
	var streamCases []any
	for _, s := range reg.Streams() {
		cond := map[string]any{"properties": map[string]any{"type": map[string]any{"const": s.Type}}}
		if s.Type != DefaultStreamType {
			cond["required"] = []string{"type"}
		}
		streamCases = append(streamCases, typeCase(cond, s.Fields))
	}
	typed(stream, reg.StreamTypes(), streamCases)

	conn := props["connectors"].(map[string]any)["items"].(map[string]any)
	var sourceCases []any
	for _, s := range reg.Sources() {
		cond := map[string]any{
			"properties": map[string]any{"type": map[string]any{"const": s.Type}},
			"required":   []string{"type"},
		}
		sourceCases = append(sourceCases, typeCase(cond, s.Fields))
	}
	typed(conn, reg.SourceTypes(), sourceCases)

	sink := props["sinks"].(map[string]any)["items"].(map[string]any)
	var sinkCases []any
	for _, s := range reg.Sinks() {
		cond := map[string]any{
			"properties": map[string]any{"type": map[string]any{"const": s.Type}},
			"required":   []string{"type"},
		}
		sinkCases = append(sinkCases, typeCase(cond, s.Fields))
	}
	typed(sink, reg.SinkTypes(), sinkCases)
	schedule := sink["properties"].(map[string]any)["retry"].(map[string]any)["properties"].(map[string]any)["schedule"].(map[string]any)
	schedule["items"] = map[string]any{"type": "string", "pattern": durationPattern}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode configuration schema: %w", err)
	}
	return buf.Bytes(), nil
}

// typed lists the known types on an object's "type" property and adds one
// if/then case per type for its "config" block.
func typed(obj map[string]any, types []string, cases []any) {
	if len(types) > 0 {
		t := obj["properties"].(map[string]any)["type"].(map[string]any)
		t["enum"] = types
	}
	if len(cases) > 0 {
		obj["allOf"] = cases
	}
}

// typeCase says: when cond holds, config follows fields.
func typeCase(cond map[string]any, fields []core.Field) map[string]any {
	then := map[string]any{"properties": map[string]any{"config": objectSchema(fields)}}
	if slices.ContainsFunc(fields, func(f core.Field) bool { return f.Required }) {
		then["required"] = []string{"config"}
	}
	return map[string]any{"if": cond, "then": then}
}

// objectSchema is the schema of a mapping with the given fields and no
// others.
func objectSchema(fields []core.Field) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fields {
		props[f.Name] = fieldSchema(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	s := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if len(required) > 0 {
		slices.Sort(required)
		s["required"] = required
	}
	return s
}

// fieldSchema is the schema of one declared field.
func fieldSchema(f core.Field) map[string]any {
	ref := map[string]any{"$ref": "#/$defs/reference"}
	var s map[string]any
	switch f.Type {
	case core.TypeString:
		s = map[string]any{"type": "string"}
		if len(f.Enum) > 0 {
			s["anyOf"] = []any{map[string]any{"enum": f.Enum}, ref}
		}
	case core.TypeInt:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "integer"}, ref}}
	case core.TypeFloat:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "number"}, ref}}
	case core.TypeBool:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "boolean"}, ref}}
	case core.TypeDuration:
		s = map[string]any{"type": "string", "pattern": durationPattern}
	case core.TypeStrings:
		s = map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	case core.TypeMap:
		s = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []string{"string", "number", "boolean"}}}
	case core.TypeObject:
		s = objectSchema(f.Fields)
	case core.TypeObjects:
		s = map[string]any{"type": "array", "items": objectSchema(f.Fields)}
	default:
		s = map[string]any{}
	}
	desc := f.Doc
	if f.Secret {
		desc += " Secret: give it by reference, such as ${file:/run/secrets/name}."
	}
	if f.Deprecated != "" {
		desc += " Deprecated: " + f.Deprecated
		s["deprecated"] = true
	}
	if desc != "" {
		s["description"] = desc
	}
	if f.Default != nil {
		s["default"] = defaultValue(f)
	}
	if f.Example != "" {
		s["examples"] = []string{f.Example}
	}
	return s
}
