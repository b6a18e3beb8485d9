package core

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
)

// FieldType is the type of a configuration field.
type FieldType string

// The field types a connector may declare.
const (
	TypeString   FieldType = "string"
	TypeInt      FieldType = "int"
	TypeFloat    FieldType = "float"
	TypeBool     FieldType = "bool"
	TypeDuration FieldType = "duration" // a Go duration string such as "30s"
	TypeStrings  FieldType = "strings"  // a list of strings
	TypeMap      FieldType = "map"      // a mapping of string to string
	TypeObject   FieldType = "object"   // a nested mapping described by Fields
	TypeObjects  FieldType = "objects"  // a list of mappings described by Fields
	TypeAny      FieldType = "any"      // any YAML value, checked by the component
)

// Field declares one configuration field of a connector or stream. The list
// of fields is the single place that drives validation, defaults, the
// `tributary connectors` listing and the config JSON Schema.
type Field struct {
	// Name is the YAML key, in snake_case.
	Name string
	Type FieldType
	// Doc is the user documentation of the field: one or two sentences.
	Doc string
	// Default is applied when the key is absent. Its Go type matches Type:
	// string, int, float64, bool, a duration string, []string or
	// map[string]string.
	Default any
	// Required fields have no default and must be set.
	Required bool
	// Enum lists the allowed values of a string field.
	Enum []string
	// Secret fields are redacted from logs, status and error messages.
	// Their values are usually references such as ${file:/run/secrets/x}.
	Secret bool
	// Fields describes the members of an object or of each list element.
	Fields []Field
	// Deprecated, when set, says what replaces the field; the loader warns
	// when it is used.
	Deprecated string
	// Example is a sample value shown in documentation.
	Example string
}

// SourceSpec registers a source connector type.
type SourceSpec struct {
	// Type is the connector type ID used in YAML, lowercase snake_case
	// naming the technology and the mechanism: "postgres_cdc", "rest_poll".
	Type string
	// Summary is one sentence for listings.
	Summary string
	// Config is a zero value of the connector's typed configuration, a
	// struct whose fields declare its keys with tags (see FieldsOf); the
	// registry derives Fields from it. Components registered before that
	// way existed may set Fields instead.
	Config any
	// Fields declares the connector's configuration.
	Fields []Field
	// New returns an empty, unconfigured source. It does no I/O.
	New func() Source
}

// StreamSpec registers a stream type (the shared stream events go to).
type StreamSpec struct {
	Type    string
	Summary string
	// Config is a zero value of the stream's typed configuration; see
	// SourceSpec.Config.
	Config any
	Fields []Field
	// New returns an empty, unconfigured stream. It does no I/O.
	New func() Stream
}

// Registry maps connector and stream type IDs to their specs. The zero value
// is not usable; call NewRegistry. A Registry is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	sources map[string]SourceSpec
	streams map[string]StreamSpec
	sinks   map[string]SinkSpec
}

// NewRegistry returns an empty registry. Tests build their own; the sidecar
// uses DefaultRegistry.
func NewRegistry() *Registry {
	return &Registry{sources: map[string]SourceSpec{}, streams: map[string]StreamSpec{}, sinks: map[string]SinkSpec{}}
}

// DefaultRegistry is the registry compiled-in connectors add themselves to
// from their init functions.
var DefaultRegistry = NewRegistry()

// RegisterSource adds a source connector type to DefaultRegistry.
func RegisterSource(s SourceSpec) { DefaultRegistry.RegisterSource(s) }

// RegisterStream adds a stream type to DefaultRegistry.
func RegisterStream(s StreamSpec) { DefaultRegistry.RegisterStream(s) }

// RegisterSink adds a sink type to DefaultRegistry.
func RegisterSink(s SinkSpec) { DefaultRegistry.RegisterSink(s) }

// RegisterSink adds a sink type. It panics like RegisterSource.
func (r *Registry) RegisterSink(s SinkSpec) {
	s.Fields = specFields("sink", s.Type, s.Config, s.Fields)
	if err := checkSpec(s.Type, s.Fields, s.New == nil); err != nil {
		panic(fmt.Sprintf("tributary: register sink: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sinks[s.Type]; dup {
		panic(fmt.Sprintf("tributary: sink type %q registered twice", s.Type))
	}
	r.sinks[s.Type] = s
}

// Sink returns the spec of a sink type.
func (r *Registry) Sink(typ string) (SinkSpec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.sinks[typ]
	return s, ok
}

// Sinks returns every sink spec, sorted by type.
func (r *Registry) Sinks() []SinkSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]SinkSpec, 0, len(r.sinks))
	for _, s := range r.sinks {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// SinkTypes returns the registered sink type IDs, sorted.
func (r *Registry) SinkTypes() []string {
	var out []string
	for _, s := range r.Sinks() {
		out = append(out, s.Type)
	}
	return out
}

// RegisterSource adds a source connector type. It panics when the type is
// already registered or the spec is malformed: both are programmer errors.
func (r *Registry) RegisterSource(s SourceSpec) {
	s.Fields = specFields("source", s.Type, s.Config, s.Fields)
	if err := checkSpec(s.Type, s.Fields, s.New == nil); err != nil {
		panic(fmt.Sprintf("tributary: register source: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sources[s.Type]; dup {
		panic(fmt.Sprintf("tributary: source type %q registered twice", s.Type))
	}
	r.sources[s.Type] = s
}

// RegisterStream adds a stream type. It panics like RegisterSource.
func (r *Registry) RegisterStream(s StreamSpec) {
	s.Fields = specFields("stream", s.Type, s.Config, s.Fields)
	if err := checkSpec(s.Type, s.Fields, s.New == nil); err != nil {
		panic(fmt.Sprintf("tributary: register stream: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.streams[s.Type]; dup {
		panic(fmt.Sprintf("tributary: stream type %q registered twice", s.Type))
	}
	r.streams[s.Type] = s
}

// Source returns the spec of a source connector type.
func (r *Registry) Source(typ string) (SourceSpec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.sources[typ]
	return s, ok
}

// Stream returns the spec of a stream type.
func (r *Registry) Stream(typ string) (StreamSpec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.streams[typ]
	return s, ok
}

// Sources returns every source spec, sorted by type.
func (r *Registry) Sources() []SourceSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]SourceSpec, 0, len(r.sources))
	for _, s := range r.sources {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// Streams returns every stream spec, sorted by type.
func (r *Registry) Streams() []StreamSpec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]StreamSpec, 0, len(r.streams))
	for _, s := range r.streams {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

// SourceTypes returns the registered source type IDs, sorted.
func (r *Registry) SourceTypes() []string {
	var out []string
	for _, s := range r.Sources() {
		out = append(out, s.Type)
	}
	return out
}

// StreamTypes returns the registered stream type IDs, sorted.
func (r *Registry) StreamTypes() []string {
	var out []string
	for _, s := range r.Streams() {
		out = append(out, s.Type)
	}
	return out
}

// specFields returns the fields a spec declares: derived from its Config
// when it has one. Declaring both is a programmer error.
func specFields(kind, typ string, config any, fields []Field) []Field {
	if config == nil {
		return fields
	}
	if len(fields) > 0 {
		panic(fmt.Sprintf("tributary: register %s %q: both Config and Fields are set; declare each key once, in Config", kind, typ))
	}
	return FieldsOfType(reflect.TypeOf(config))
}

func checkSpec(typ string, fields []Field, noNew bool) error {
	if typ == "" {
		return fmt.Errorf("empty type")
	}
	for _, c := range typ {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("type %q: IDs are lowercase snake_case", typ)
		}
	}
	if noNew {
		return fmt.Errorf("type %q: New is nil", typ)
	}
	return checkFields(typ, fields)
}

func checkFields(where string, fields []Field) error {
	seen := map[string]bool{}
	for _, f := range fields {
		if f.Name == "" {
			return fmt.Errorf("%s: field with empty name", where)
		}
		if seen[f.Name] {
			return fmt.Errorf("%s: field %q declared twice", where, f.Name)
		}
		seen[f.Name] = true
		known := []FieldType{TypeString, TypeInt, TypeFloat, TypeBool, TypeDuration, TypeStrings, TypeMap, TypeObject, TypeObjects, TypeAny}
		if !slices.Contains(known, f.Type) {
			return fmt.Errorf("%s: field %q has unknown type %q", where, f.Name, f.Type)
		}
		if f.Required && f.Default != nil {
			return fmt.Errorf("%s: field %q is required and has a default", where, f.Name)
		}
		if (f.Type == TypeObject || f.Type == TypeObjects) && len(f.Fields) == 0 {
			return fmt.Errorf("%s: field %q of type %s declares no fields", where, f.Name, f.Type)
		}
		if err := checkFields(where+"."+f.Name, f.Fields); err != nil {
			return err
		}
	}
	return nil
}
