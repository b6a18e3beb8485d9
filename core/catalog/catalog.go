package catalog

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders validation messages; it is never modified.
var printer = message.NewPrinter(language.English)

// Catalog is a compiled list of event types. A nil or empty Catalog holds no
// type. It is immutable after New and safe for concurrent use.
type Catalog struct {
	types   []core.EventType
	entries map[string]*entry
	// formats holds, per format name, the schema {"format": name}; the
	// pre-checks of all types share them. Only New writes it.
	formats map[string]*jsonschema.Schema
}

// formatSchema returns the compiled schema {"format": name}, or nil.
func (c *Catalog) formatSchema(name string) *jsonschema.Schema {
	if s, ok := c.formats[name]; ok {
		return s
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	const loc = "urn:tributary:format"
	var s *jsonschema.Schema
	if err := comp.AddResource(loc, map[string]any{"format": name}); err == nil {
		s, _ = comp.Compile(loc)
	}
	c.formats[name] = s
	return s
}

type entry struct {
	typ        core.EventType
	dataSchema string
	schema     *jsonschema.Schema
	fast       *fastSchema // nil when the schema needs the full validator
}

// ErrUnknownType is returned by Validate for a type the catalog does not
// declare.
var ErrUnknownType = errors.New("event type is not in the catalog")

// typeRe is what event type names look like: lowercase reverse-DNS dotted
// names such as com.acme.order.accepted, at least two segments.
var typeRe = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)+$`)

// versionRe is what versions look like: "1", "2.1.0", "v3". They appear in
// a URN, so they hold no colon or space.
var versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// New compiles the catalog from types, in declaration order. baseDir
// resolves relative SchemaFile paths; it is the folder of the configuration
// file. It reads schema files, and does no other I/O.
//
// The error joins a *core.FieldError for every problem found, its Path
// relative to the catalog list: "[1].type" for an empty, malformed or
// duplicate type, "[0].version" for a missing or malformed version,
// "[2].schema_file" for a file that cannot be read or parsed or holds a
// schema that does not compile, "[2].schema" for an inline schema that does
// not compile, or no schema at all.
func New(types []core.EventType, baseDir string) (*Catalog, error) {
	c := &Catalog{entries: make(map[string]*entry, len(types)), formats: map[string]*jsonschema.Schema{}}
	var errs []error
	seen := make(map[string]int, len(types))
	for i, t := range types {
		at := fmt.Sprintf("[%d]", i)
		ok := true
		switch {
		case t.Type == "":
			errs = append(errs, core.FieldErrorf(at+".type", "type is empty: name the event type, such as com.acme.order.accepted"))
			ok = false
		case !typeRe.MatchString(t.Type):
			errs = append(errs, core.FieldErrorf(at+".type", "type %q is not a lowercase reverse-DNS dotted name, such as com.acme.order.accepted", t.Type))
			ok = false
		default:
			if j, dup := seen[t.Type]; dup {
				errs = append(errs, core.FieldErrorf(at+".type", "type %q is declared twice, also at [%d]: give each type one entry, and bump its version to change its schema", t.Type, j))
				ok = false
			} else {
				seen[t.Type] = i
			}
		}
		switch {
		case t.Version == "":
			errs = append(errs, core.FieldErrorf(at+".version", "version is required, such as \"1\""))
			ok = false
		case !versionRe.MatchString(t.Version):
			errs = append(errs, core.FieldErrorf(at+".version", "version %q may hold only letters, digits, '.', '_' and '-', such as \"1\" or \"2.1.0\"", t.Version))
			ok = false
		}
		sch, fast, err := compile(t, baseDir, c.formatSchema)
		if err != nil {
			errs = append(errs, core.PrefixFieldErrors(at, err))
			ok = false
		}
		if !ok {
			continue
		}
		c.types = append(c.types, t)
		c.entries[t.Type] = &entry{typ: t, dataSchema: dataSchema(t), schema: sch, fast: fast}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func dataSchema(t core.EventType) string {
	return "urn:tributary:schema:" + t.Type + ":" + t.Version
}

// compile compiles the schema of t. Errors are *core.FieldError values with
// paths "schema" or "schema_file".
func compile(t core.EventType, baseDir string, formats func(string) *jsonschema.Schema) (*jsonschema.Schema, *fastSchema, error) {
	hasInline := t.Schema != nil
	switch {
	case hasInline && t.SchemaFile != "":
		return nil, nil, core.FieldErrorf("schema_file", "set either schema or schema_file, not both")
	case !hasInline && t.SchemaFile == "":
		return nil, nil, core.FieldErrorf("schema", "schema is missing: write the JSON Schema of the data inline under schema, or name its file in schema_file")
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.AssertFormat()
	comp.UseLoader(fileLoader{})

	var loc, field string
	var doc any
	if hasInline {
		field = "schema"
		var err error
		doc, err = Normalize(t.Schema)
		if err != nil {
			return nil, nil, core.FieldErrorf(field, "schema is not JSON: %w", err)
		}
		loc = "urn:tributary:schema:" + url.PathEscape(t.Type) + ":" + url.PathEscape(t.Version)
		if err := comp.AddResource(loc, doc); err != nil {
			return nil, nil, core.FieldErrorf(field, "add schema: %w", err)
		}
	} else {
		field = "schema_file"
		path := t.SchemaFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, nil, core.FieldErrorf(field, "resolve schema file %q: %w", t.SchemaFile, err)
		}
		doc, err = loadFile(abs)
		if err != nil {
			return nil, nil, core.FieldErrorf(field, "%w", err)
		}
		loc = fileURL(abs)
		if err := comp.AddResource(loc, doc); err != nil {
			return nil, nil, core.FieldErrorf(field, "add schema %q: %w", t.SchemaFile, err)
		}
	}
	sch, err := comp.Compile(loc)
	if err != nil {
		return nil, nil, core.FieldErrorf(field, "schema does not compile: %s", compileMessage(err))
	}
	return sch, newFast(doc, true, formats), nil
}

// compileMessage flattens a compile error to one line. A schema that breaks
// the draft's metaschema is reported as its violations, without the
// metaschema's URLs.
func compileMessage(err error) string {
	var se *jsonschema.SchemaValidationError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			return "it breaks the JSON Schema metaschema: " + strings.Join(problems(ve), "; ")
		}
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// loadFile reads a schema file: JSON when its name ends in .json, YAML
// otherwise.
func loadFile(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema file: %w", err)
	}
	var doc any
	if strings.EqualFold(filepath.Ext(path), ".json") {
		if err := unmarshalNumber(b, &doc); err != nil {
			return nil, fmt.Errorf("parse schema file %s as JSON: %w", path, err)
		}
		return doc, nil
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse schema file %s as YAML: %w", path, err)
	}
	doc, err = Normalize(doc)
	if err != nil {
		return nil, fmt.Errorf("schema file %s is not JSON: %w", path, err)
	}
	return doc, nil
}

// fileLoader loads the files that schemas $ref, JSON or YAML by extension.
type fileLoader struct{}

func (fileLoader) Load(u string) (any, error) {
	path, err := jsonschema.FileLoader{}.ToFile(u)
	if err != nil {
		return nil, err
	}
	return loadFile(path)
}

var _ jsonschema.URLLoader = fileLoader{}

// Has reports whether the catalog declares eventType.
func (c *Catalog) Has(eventType string) bool {
	if c == nil {
		return false
	}
	_, ok := c.entries[eventType]
	return ok
}

// Len returns the number of declared types.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.types)
}

// Types returns the declared event types in declaration order. The slice is
// a copy.
func (c *Catalog) Types() []core.EventType {
	if c == nil {
		return nil
	}
	return append([]core.EventType(nil), c.types...)
}

// DataSchema returns the CloudEvents dataschema URI of eventType,
// "urn:tributary:schema:<type>:<version>", or "" when the type is not
// declared.
func (c *Catalog) DataSchema(eventType string) string {
	if c == nil {
		return ""
	}
	if e, ok := c.entries[eventType]; ok {
		return e.dataSchema
	}
	return ""
}

// Validate checks data, a JSON-compatible value (see [Normalize]), against
// the schema of eventType. It returns nil when data conforms, a
// *ValidationError listing every violation when it does not, and an error
// wrapping ErrUnknownType when the catalog does not declare eventType.
func (c *Catalog) Validate(eventType string, data any) error {
	var e *entry
	if c != nil {
		e = c.entries[eventType]
	}
	if e == nil {
		return fmt.Errorf("validate data of %q: %w", eventType, ErrUnknownType)
	}
	if e.fast != nil && e.fast.valid(data) {
		return nil
	}
	err := e.schema.Validate(data)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate data of %q: %w", eventType, err)
	}
	return &ValidationError{Type: eventType, Version: e.typ.Version, Problems: problems(ve)}
}

// ValidationError reports event data that violates its type's schema.
type ValidationError struct {
	// Type and Version name the schema.
	Type    string
	Version string
	// Problems lists every violation as "<JSON pointer>: <message>", such as
	// "/total: minimum: got -3.5, want 0", sorted; the data itself is
	// written "(root)".
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("data of %s (version %s) does not match its schema: %s", e.Type, e.Version, strings.Join(e.Problems, "; "))
}

// problems lists the leaves of a validation error tree.
func problems(ve *jsonschema.ValidationError) []string {
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(v *jsonschema.ValidationError) {
		if len(v.Causes) == 0 {
			out = append(out, pointerOrRoot(pointer(v.InstanceLocation))+": "+v.ErrorKind.LocalizedString(printer))
			return
		}
		for _, c := range v.Causes {
			walk(c)
		}
	}
	walk(ve)
	// The validator walks maps: sort, so that equal data gives equal errors.
	slices.Sort(out)
	return out
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointer(t))
	}
	return sb.String()
}

// ValidTypeName reports whether name looks like an event type: a lowercase
// reverse-DNS dotted name such as com.acme.order.accepted.
func ValidTypeName(name string) bool { return typeRe.MatchString(name) }
