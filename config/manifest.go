package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"
)

// Nested is implemented by a source type whose configuration carries
// another program's own settings in one of its keys, such as the plugin
// connector's "config", and may name a manifest file declaring that
// program's fields. When the manifest is named, Load checks the nested
// block against the fields it declares exactly as it checks a connector's
// own fields (unknown keys with a suggestion, types, enums, required
// fields, defaults, secrets), reports its problems at their line and
// column in the configuration file, and hands the component the block
// with the manifest's defaults applied. Without a manifest the block is
// passed on as written, for the program to check when it starts.
//
// A manifest is a YAML (or JSON) file with one key, fields: a list of
// field declarations with the keys name, type, doc, default, required,
// enum, secret, deprecated, example and, for object and objects fields,
// fields. They mean what the same names of core.Field mean. Relative
// manifest paths start from the configuration file's directory.
type Nested interface {
	// NestedConfig returns the key holding the nested block and the key
	// naming the manifest file, both keys of the component's own
	// configuration. It is called on a new, unconfigured value and does
	// no I/O.
	NestedConfig() (block, manifest string)
}

// manifest is a parsed manifest file: the fields it declares, or ok false
// when the file could not be read or holds problems (reported once, in the
// file, however many connectors name it).
type manifest struct {
	fields  []core.Field
	ok      bool
	readErr error
}

// manifestNameRe is what a declared field's name looks like: a key that
// field paths can name without quoting.
var manifestNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// fieldTypes lists the field types a manifest may declare.
var fieldTypes = []string{
	string(core.TypeString), string(core.TypeInt), string(core.TypeFloat), string(core.TypeBool),
	string(core.TypeDuration), string(core.TypeStrings), string(core.TypeMap),
	string(core.TypeObject), string(core.TypeObjects), string(core.TypeAny),
}

// manifestFields declares a manifest's own keys.
func manifestFields() []core.Field {
	return []core.Field{
		{Name: "fields", Type: core.TypeAny, Required: true, Doc: "The fields of the nested configuration block, each declared with name and type."},
	}
}

// fieldDeclFields declares one field declaration of a manifest
// (core.Field). Its "fields" are declarations again, read recursively.
func fieldDeclFields() []core.Field {
	return []core.Field{
		{Name: "name", Type: core.TypeString, Required: true, Doc: "The key as written in the configuration."},
		{Name: "type", Type: core.TypeString, Required: true, Enum: fieldTypes, Doc: "The value's type."},
		{Name: "doc", Type: core.TypeString, Doc: "One or two sentences for users."},
		{Name: "default", Type: core.TypeAny, Doc: "The value used when the key is absent, of the field's type."},
		{Name: "required", Type: core.TypeBool, Default: false, Doc: "The key must be set; a required field has no default."},
		{Name: "enum", Type: core.TypeStrings, Doc: "The values a string field allows."},
		{Name: "secret", Type: core.TypeBool, Default: false, Doc: "The value is redacted from logs, status and messages."},
		{Name: "deprecated", Type: core.TypeString, Doc: "What replaces the field; using it warns."},
		{Name: "example", Type: core.TypeString, Doc: "A sample value."},
		{Name: "fields", Type: core.TypeAny, Doc: "The members of an object field, or of each element of an objects field."},
	}
}

// nested checks the block that n names in a connector's config (item is
// the connector's list item, path its config's field path, values its
// decoded config) against the fields the named manifest declares, and
// replaces the block in values by its decoded form, with defaults.
func (l *loader) nested(item *yaml.Node, path string, values map[string]any, n Nested) {
	blockKey, manifestKey := n.NestedConfig()
	file, _ := values[manifestKey].(string)
	if file == "" {
		return
	}
	cfgPair, _ := l.lookup(item, "config")
	cfg := deref(cfgPair.value)
	if cfg == nil || cfg.Kind != yaml.MappingNode {
		return // reported by the connector's own field check
	}
	m := l.manifest(file)
	if m.readErr != nil {
		p, _ := l.lookup(cfg, manifestKey)
		l.problem(p.key, p.value, joinPath(path, manifestKey), "cannot read manifest %q: %v; relative paths start from %s", file, m.readErr, l.dir)
		return
	}
	if !m.ok {
		return // the manifest's own problems are reported in it
	}
	p, _ := l.lookup(cfg, blockKey)
	values[blockKey] = l.object(p.key, p.value, cfgPair.key, joinPath(path, blockKey), m.fields, false, 2)
}

// manifest reads and checks the manifest at file, once per Load. Its
// problems are recorded with the manifest's name, relative to the
// configuration file's as that was given.
func (l *loader) manifest(file string) *manifest {
	abs, shown := file, file
	if !filepath.IsAbs(file) {
		abs = filepath.Join(l.dir, file)
		if l.file != "" {
			shown = filepath.Join(filepath.Dir(l.file), file)
		}
	}
	if m, ok := l.manifests[abs]; ok {
		return m
	}
	m := &manifest{}
	l.manifests[abs] = m
	data, err := os.ReadFile(abs)
	if err != nil {
		m.readErr = err
		return m
	}
	ml := newLoader(shown, l.dir)
	if root := ml.parseYAML(data); root != nil {
		decl := ml.object(nil, root, nil, "", manifestFields(), false, 0)
		if _, ok := decl["fields"]; ok {
			p, _ := ml.lookup(root, "fields")
			m.fields = ml.fieldDecls(p.key, p.value, "fields", 1)
		}
	}
	for _, p := range ml.problems {
		l.add(p)
	}
	l.dropped += ml.dropped
	m.ok = len(ml.problems) == 0 && ml.dropped == 0
	return m
}

// fieldDecls reads the list of field declarations v (the value of key) at
// path. It returns what it could read; the caller uses it only when no
// problem was recorded.
func (l *loader) fieldDecls(key, v *yaml.Node, path string, depth int) []core.Field {
	n := deref(v)
	if n == nil || n.Kind != yaml.SequenceNode {
		l.problem(key, v, path, "expected a list of field declarations, each with a name and a type, got %s", kindName(n))
		return nil
	}
	var out []core.Field
	seen := map[string]int{}
	for i, item := range n.Content {
		at := fmt.Sprintf("%s[%d]", path, i)
		vals := l.object(nil, item, nil, at, fieldDeclFields(), false, depth+1)
		f := core.Field{
			Name:       strOf(vals, "name"),
			Type:       core.FieldType(strOf(vals, "type")),
			Doc:        strOf(vals, "doc"),
			Required:   vals["required"] == true,
			Secret:     vals["secret"] == true,
			Deprecated: strOf(vals, "deprecated"),
			Example:    strOf(vals, "example"),
		}
		for _, e := range listOf(vals, "enum") {
			s, _ := e.(string)
			f.Enum = append(f.Enum, s)
		}
		l.checkDecl(item, at, &f, seen, i, depth)
		out = append(out, f)
	}
	return out
}

// checkDecl checks what one declaration's keys cannot say alone, and reads
// its default and nested fields.
func (l *loader) checkDecl(item *yaml.Node, at string, f *core.Field, seen map[string]int, i, depth int) {
	get := func(key string) (*yaml.Node, *yaml.Node, bool) {
		p, ok := l.lookup(item, key)
		return p.key, p.value, ok && !isNull(p.value)
	}
	if k, v, ok := get("name"); ok && f.Name != "" {
		switch j, dup := seen[f.Name]; {
		case !manifestNameRe.MatchString(f.Name):
			l.problem(k, v, at+".name", "%q is not a plain key: use letters, digits, '_' and '-', starting with a letter or '_'", f.Name)
		case dup:
			l.problem(k, v, at+".name", "field %q is declared twice (also at [%d]); declare each field once", f.Name, j)
		default:
			seen[f.Name] = i
		}
	}
	composite := f.Type == core.TypeObject || f.Type == core.TypeObjects
	if k, v, ok := get("enum"); ok && f.Type != "" && f.Type != core.TypeString {
		l.problem(k, v, at+".enum", "only string fields take an enum; this field is %s", f.Type)
	}
	k, v, hasFields := get("fields")
	switch {
	case composite && !hasFields:
		l.problem(nil, item, at+".fields", "an %s field declares its members under fields; use type any for a free-form value", f.Type)
	case composite:
		f.Fields = l.fieldDecls(k, v, at+".fields", depth+2)
	case hasFields && f.Type != "":
		l.problem(k, v, at+".fields", "only object and objects fields have fields; this field is %s", f.Type)
	}
	k, v, hasDefault := get("default")
	switch {
	case !hasDefault || f.Type == "":
	case f.Required:
		l.problem(k, v, at+".default", "a required field has no default: drop required or the default")
	case composite:
		l.problem(k, v, at+".default", "an %s field takes no default: give its fields defaults instead", f.Type)
	default:
		if d, ok := l.value(k, v, at+".default", core.Field{Name: "default", Type: f.Type, Enum: f.Enum}, false, depth+1); ok {
			f.Default = d
		}
	}
}
