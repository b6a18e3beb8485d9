package core

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// Config is a component's validated configuration: the values of its
// declared fields, with defaults applied and ${...} references resolved. The
// config loader builds it; components decode it into their own typed struct.
type Config struct {
	// Name is the component's instance name (the connector name).
	Name string
	// Values holds the decoded field values: string, int, float64, bool,
	// []any, map[string]any.
	Values map[string]any
}

// NewConfig returns a Config for name holding values.
func NewConfig(name string, values map[string]any) Config {
	if values == nil {
		values = map[string]any{}
	}
	return Config{Name: name, Values: values}
}

// Decode decodes the values into v, a pointer to a struct with yaml tags.
// Decoding is strict: a value with no matching struct field is an error.
// Durations decode from strings such as "30s" into time.Duration fields.
// When v is a declared configuration struct (see FieldsOf), absent keys
// take their declared defaults first, so a component decodes the same
// values whether or not the config loader filled them in. Errors are
// *FieldError values naming the field.
func (c Config) Decode(v any) error {
	values := c.Values
	if t := reflect.TypeOf(v); t != nil && declared(t) {
		fields, _ := fieldsOfType(t)
		values = WithDefaults(fields, values)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(values); err != nil {
		return fmt.Errorf("encode configuration of %q: %w", c.Name, err)
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs []error
			for _, msg := range te.Errors {
				errs = append(errs, &FieldError{Path: fieldFromYAMLMessage(msg), Err: errors.New(cleanYAMLMessage(msg))})
			}
			return errors.Join(errs...)
		}
		return &FieldError{Err: err}
	}
	return nil
}

var yamlFieldRe = regexp.MustCompile(`field (\S+) not found`)

func fieldFromYAMLMessage(msg string) string {
	if m := yamlFieldRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

var yamlLineRe = regexp.MustCompile(`^line \d+: `)

func cleanYAMLMessage(msg string) string {
	return yamlLineRe.ReplaceAllString(msg, "")
}
