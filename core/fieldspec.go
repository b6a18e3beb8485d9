package core

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// A component declares each configuration key once, as a field of its
// typed configuration struct:
//
//	type Config struct {
//		Brokers []string      `yaml:"brokers" required:"true" doc:"Bootstrap brokers as host:port." example:"[kafka-1:9092]"`
//		Linger  time.Duration `yaml:"linger" default:"0s" doc:"Longest time a message waits to be batched."`
//		Codec   string        `yaml:"compression" default:"none" enum:"none,lz4,zstd" doc:"Codec of record batches."`
//		TLS     TLSConfig     `yaml:"tls" doc:"TLS to the brokers; absent means plaintext."`
//	}
//
// FieldsOf reads those tags once and returns the Field list that drives
// validation, `tributary connectors`, the config JSON Schema and docs;
// Config.Decode fills absent keys with the same defaults before decoding.
// The tags:
//
//	yaml        the key (required; "-" leaves a struct field out of the
//	            configuration; ",inline" on an embedded struct puts its
//	            keys beside the outer struct's, as yaml decodes them)
//	doc         one line of user documentation (required)
//	default     the default, written as in YAML: 30s, 10, true, [a, b]
//	required    "true": the key must be set (and has no default)
//	enum        the allowed values of a string key, comma-separated
//	secret      "true": redacted from logs, status and errors
//	example     a sample value for docs
//	deprecated  what replaces the key; the loader warns when it is used
//
// Go types map to field types: string (and named strings, and types that
// implement encoding.TextUnmarshaler) to TypeString, the integer kinds to
// TypeInt, float64 to TypeFloat, bool to TypeBool, time.Duration to
// TypeDuration, []string to TypeStrings, map[string]string to TypeMap, a
// struct or a pointer to one to TypeObject, a slice of structs to
// TypeObjects, and any, map[string]any or []any to TypeAny.

// FieldsOf returns the fields declared by the tags of T, a struct type. It
// panics when a tag is malformed: that is a programmer error, found when the
// component registers at start-up.
func FieldsOf[T any]() []Field {
	return FieldsOfType(reflect.TypeFor[T]())
}

// FieldsOfType is FieldsOf for a reflect.Type (a struct or a pointer to
// one).
func FieldsOfType(t reflect.Type) []Field {
	fields, err := fieldsOfType(t)
	if err != nil {
		panic(fmt.Sprintf("tributary: configuration struct %s: %v", t, err))
	}
	return fields
}

var fieldCache sync.Map // reflect.Type -> fieldsResult

type fieldsResult struct {
	fields []Field
	err    error
}

func fieldsOfType(t reflect.Type) ([]Field, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if r, ok := fieldCache.Load(t); ok {
		res := r.(fieldsResult)
		return res.fields, res.err
	}
	fields, err := buildFields(t)
	fieldCache.Store(t, fieldsResult{fields, err})
	return fields, err
}

// declared reports whether t is a configuration struct: one whose every
// key is declared with tags (a struct whose tags are malformed panics when
// its component registers, through FieldsOf).
func declared(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	fields, err := fieldsOfType(t)
	return err == nil && len(fields) > 0
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	textUnmarshal = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func buildFields(t reflect.Type) ([]Field, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("is a %s, not a struct", t.Kind())
	}
	var out []Field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" {
			// An embedded struct's keys sit beside this struct's own, as
			// yaml decodes them: the poll adapter's schedule and mode in
			// every polling connector.
			inner, err := fieldsOfType(sf.Type)
			if err != nil {
				return nil, fmt.Errorf("inline field %s: %w", sf.Name, err)
			}
			out = append(out, inner...)
			continue
		}
		if name == "-" || !sf.IsExported() && name == "" {
			continue
		}
		if name == "" {
			return nil, fmt.Errorf("field %s has no yaml tag (use yaml:\"-\" to leave it out)", sf.Name)
		}
		f, err := fieldOf(sf, name)
		if err != nil {
			return nil, fmt.Errorf("field %s (%s): %w", sf.Name, name, err)
		}
		out = append(out, f)
	}
	if err := checkFields(t.String(), out); err != nil {
		return nil, err
	}
	return out, nil
}

func fieldOf(sf reflect.StructField, name string) (Field, error) {
	tag := sf.Tag
	f := Field{
		Name:       name,
		Doc:        tag.Get("doc"),
		Secret:     tag.Get("secret") == "true",
		Required:   tag.Get("required") == "true",
		Example:    tag.Get("example"),
		Deprecated: tag.Get("deprecated"),
	}
	if f.Doc == "" {
		return f, fmt.Errorf("no doc tag")
	}
	typ, elem, err := fieldType(sf.Type)
	if err != nil {
		return f, err
	}
	f.Type = typ
	if elem != nil {
		if f.Fields, err = fieldsOfType(elem); err != nil {
			return f, err
		}
	}
	if e, ok := tag.Lookup("enum"); ok {
		if typ != TypeString && typ != TypeStrings {
			return f, fmt.Errorf("enum on a %s field", typ)
		}
		f.Enum = strings.Split(e, ",")
		for i := range f.Enum {
			f.Enum[i] = strings.TrimSpace(f.Enum[i])
		}
	}
	if d, ok := tag.Lookup("default"); ok {
		if f.Default, err = parseDefault(typ, d); err != nil {
			return f, fmt.Errorf("default %q: %w", d, err)
		}
		if s, isString := f.Default.(string); isString && f.Enum != nil && typ == TypeString && s != "" && !contains(f.Enum, s) {
			return f, fmt.Errorf("default %q is not one of its enum %v", s, f.Enum)
		}
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fieldType maps a Go type to its field type, and for objects the struct
// whose fields they hold.
func fieldType(t reflect.Type) (FieldType, reflect.Type, error) {
	if t == durationType {
		return TypeDuration, nil, nil
	}
	if t.Implements(textUnmarshal) || reflect.PointerTo(t).Implements(textUnmarshal) {
		return TypeString, nil, nil
	}
	switch t.Kind() {
	case reflect.String:
		return TypeString, nil, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return TypeInt, nil, nil
	case reflect.Float32, reflect.Float64:
		return TypeFloat, nil, nil
	case reflect.Bool:
		return TypeBool, nil, nil
	case reflect.Interface:
		return TypeAny, nil, nil
	case reflect.Pointer:
		if t.Elem().Kind() == reflect.Struct {
			return TypeObject, t.Elem(), nil
		}
	case reflect.Struct:
		return TypeObject, t, nil
	case reflect.Slice:
		e := t.Elem()
		switch {
		case e.Kind() == reflect.String:
			return TypeStrings, nil, nil
		case e.Kind() == reflect.Struct:
			return TypeObjects, e, nil
		case e.Kind() == reflect.Pointer && e.Elem().Kind() == reflect.Struct:
			return TypeObjects, e.Elem(), nil
		case e.Kind() == reflect.Interface:
			return TypeAny, nil, nil
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			if t.Elem().Kind() == reflect.String {
				return TypeMap, nil, nil
			}
			if t.Elem().Kind() == reflect.Interface {
				return TypeAny, nil, nil
			}
		}
	}
	return "", nil, fmt.Errorf("type %s has no configuration field type", t)
}

// parseDefault reads a default tag as its field type's Go value (see
// Field.Default).
func parseDefault(typ FieldType, s string) (any, error) {
	switch typ {
	case TypeString:
		return s, nil
	case TypeInt:
		return strconv.Atoi(s)
	case TypeFloat:
		return strconv.ParseFloat(s, 64)
	case TypeBool:
		return strconv.ParseBool(s)
	case TypeDuration:
		if _, err := time.ParseDuration(s); err != nil {
			return nil, err
		}
		return s, nil
	case TypeStrings:
		var v []string
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	case TypeMap:
		var v map[string]string
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	case TypeAny:
		var v any
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("a %s field takes no default", typ)
}

// WithDefaults returns values with every absent key of fields set to its
// default, in objects (and each element of a list of objects) that are
// present too. values is not modified.
func WithDefaults(fields []Field, values map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range values {
		out[k] = v
	}
	for _, f := range fields {
		v, ok := out[f.Name]
		switch {
		case !ok && f.Default != nil:
			out[f.Name] = copyDefault(f.Default)
		case ok && f.Type == TypeObject:
			if m, isMap := v.(map[string]any); isMap {
				out[f.Name] = WithDefaults(f.Fields, m)
			}
		case ok && f.Type == TypeObjects:
			if list, isList := v.([]any); isList {
				items := make([]any, len(list))
				for i, item := range list {
					if m, isMap := item.(map[string]any); isMap {
						items[i] = WithDefaults(f.Fields, m)
					} else {
						items[i] = item
					}
				}
				out[f.Name] = items
			}
		}
	}
	return out
}

func copyDefault(v any) any {
	switch d := v.(type) {
	case []string:
		out := make([]any, len(d))
		for i, s := range d {
			out[i] = s
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(d))
		for k, s := range d {
			out[k] = s
		}
		return out
	}
	return v
}

// blockDefaults adds to values (a map WithDefaults returned for t's fields)
// an empty block, filled with its keys' defaults, for every absent (or
// null) key whose
// Go field is a struct rather than a pointer to one: a block left out of the
// file then decodes with its declared defaults, as if written empty, while a
// pointer block (such as an optional tls: section) stays nil, "absent means
// none". It recurses into present blocks and lists of blocks.
func blockDefaults(t reflect.Type, values map[string]any) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" {
			blockDefaults(sf.Type, values)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		ft := sf.Type
		switch {
		case ft.Kind() == reflect.Struct && declared(ft):
			v, ok := values[name]
			if !ok || v == nil {
				fields, _ := fieldsOfType(ft)
				v = WithDefaults(fields, nil)
				values[name] = v
			}
			if m, isMap := v.(map[string]any); isMap {
				blockDefaults(ft, m)
			}
		case ft.Kind() == reflect.Pointer && declared(ft):
			if m, isMap := values[name].(map[string]any); isMap {
				blockDefaults(ft, m)
			}
		case ft.Kind() == reflect.Slice && declared(ft.Elem()):
			if list, isList := values[name].([]any); isList {
				for _, item := range list {
					if m, isMap := item.(map[string]any); isMap {
						blockDefaults(ft.Elem(), m)
					}
				}
			}
		}
	}
}
