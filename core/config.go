package core

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

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
// take their declared defaults first, and a number given for a duration
// is read as its text (0 as "0"), as the config loader reads YAML, so a
// component decodes the same values whether or not the loader filled them
// in. Errors are *FieldError values naming the field; a field that does not
// decode keeps its zero value and the others are still decoded.
func (c Config) Decode(v any) error {
	values := c.Values
	if t := reflect.TypeOf(v); t != nil && declared(t) {
		fields, _ := fieldsOfType(t)
		values = WithDefaults(fields, values)
		blockDefaults(t, values)
		durationsAsText(fields, values)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(values); err != nil {
		return fmt.Errorf("encode configuration of %q: %w", c.Name, err)
	}
	doc := buf.Bytes()
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			lines := pathsByLine(doc)
			var errs []error
			for _, msg := range te.Errors {
				path := fieldFromYAMLMessage(msg)
				if path == "" {
					path = lines.path(msg)
				}
				errs = append(errs, &FieldError{Path: path, Err: errors.New(cleanYAMLMessage(msg))})
			}
			return errors.Join(errs...)
		}
		return &FieldError{Err: err}
	}
	return nil
}

// durationsAsText replaces, in values (a map WithDefaults returned, whose
// objects it copied), each number given for a duration field by its text.
func durationsAsText(fields []Field, values map[string]any) {
	for _, f := range fields {
		switch v := values[f.Name].(type) {
		case int, int64, uint64, float64:
			if f.Type == TypeDuration {
				values[f.Name] = fmt.Sprint(v)
			}
		case map[string]any:
			if f.Type == TypeObject {
				durationsAsText(f.Fields, v)
			}
		case []any:
			if f.Type == TypeObjects {
				for _, item := range v {
					if m, ok := item.(map[string]any); ok {
						durationsAsText(f.Fields, m)
					}
				}
			}
		}
	}
}

// linePaths maps the lines of a YAML document Decode encoded (block style:
// a key and its scalar value on one line) to the paths of the values there
// (tls.ca_file, brokers[1]).
type linePaths struct {
	keys       map[int]string // the key on each line
	containers map[int]string // the mapping or list value starting on each line
}

func pathsByLine(doc []byte) linePaths {
	lp := linePaths{keys: map[int]string{}, containers: map[int]string{}}
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return lp
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
			return
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				lp.keys[n.Content[i].Line] = p
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				lp.keys[c.Line] = p
				walk(c, p)
			}
		default:
			return
		}
		if path != "" {
			lp.containers[n.Line] = path
		}
	}
	walk(&root, "")
	return lp
}

// path returns the path of the value a yaml type error is about, from the
// line it names: the mapping or list starting there when the error is
// about one (`cannot unmarshal !!map into string`), else the key on that
// line.
func (lp linePaths) path(msg string) string {
	m := yamlLineRe.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	if p, ok := lp.containers[line]; ok && (strings.Contains(msg, "!!map") || strings.Contains(msg, "!!seq")) {
		return p
	}
	return lp.keys[line]
}

var yamlFieldRe = regexp.MustCompile(`field (\S+) not found`)

func fieldFromYAMLMessage(msg string) string {
	if m := yamlFieldRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

var yamlLineRe = regexp.MustCompile(`^line (\d+): `)

func cleanYAMLMessage(msg string) string {
	return yamlLineRe.ReplaceAllString(msg, "")
}
