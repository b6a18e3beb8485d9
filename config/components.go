package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tributary/tributary/core"
	"go.yaml.in/yaml/v3"
)

// components validates the stream's, every connector's and every sink's
// config block against the fields their type declares, then lets each
// component's Configure check what field declarations cannot.
func (l *loader) components(cfg *Config, root *yaml.Node, reg *core.Registry) {
	l.stream(cfg, root, reg)
	seq := deref(root)
	if p, ok := l.lookup(seq, "connectors"); ok {
		seq = deref(p.value)
	}
	for i := range cfg.Connectors {
		var item *yaml.Node
		if seq != nil && seq.Kind == yaml.SequenceNode && i < len(seq.Content) {
			item = seq.Content[i]
		}
		l.connector(&cfg.Connectors[i], i, item, root, reg)
	}
	l.sinks(cfg, root, reg)
}

func (l *loader) stream(cfg *Config, root *yaml.Node, reg *core.Registry) {
	s := &cfg.Stream
	if s.Type == "" {
		return // reported by the type check
	}
	spec, ok := reg.Stream(s.Type)
	if !ok {
		key, val := l.locate(root, "stream.type")
		l.problem(key, val, "stream.type", "unknown stream type %q%s", s.Type, knownTypes(s.Type, reg.StreamTypes(), "stream"))
		return
	}
	parent, owner := (*yaml.Node)(nil), root
	if p, ok := l.lookup(root, "stream"); ok {
		parent, owner = p.value, p.key
	}
	values := l.block(parent, owner, "stream.config", spec.Fields)
	s.Config = core.NewConfig("stream", values)
	s.secrets = l.secretsBelow("stream.config")
	if !l.cleanBelow("stream.config") {
		// Configure would only repeat what the fields, or a reference that
		// could not be resolved, already said.
		return
	}
	l.configure(root, "stream.config", func() error {
		return spec.New().Configure(core.NewConfig("stream", copyMap(values)))
	})
}

func (l *loader) connector(c *ConnectorConfig, i int, item, root *yaml.Node, reg *core.Registry) {
	base := fmt.Sprintf("connectors[%d]", i)
	if c.Type == "" {
		return // reported as a missing field
	}
	spec, ok := reg.Source(c.Type)
	if !ok {
		key, val := l.locate(root, base+".type")
		if c.Disabled {
			l.warn(key, val, base+".type", "unknown connector type %q in a disabled connector: its configuration is not checked", c.Type)
			return
		}
		l.problem(key, val, base+".type", "unknown connector type %q%s", c.Type, knownTypes(c.Type, reg.SourceTypes(), "connector"))
		return
	}
	values := l.block(item, item, base+".config", spec.Fields)
	src := spec.New()
	if n, ok := src.(Nested); ok {
		l.nested(item, base+".config", values, n)
	}
	l.typeMaxInFlight(c, item, src)
	c.Config = core.NewConfig(c.Name, values)
	c.secrets = l.secretsBelow(base + ".config")
	if !l.cleanBelow(base + ".config") {
		return
	}
	name := c.Name
	l.configure(root, base+".config", func() error {
		return spec.New().Configure(core.NewConfig(name, copyMap(values)))
	})
}

// block validates the "config" mapping in parent (the stream section or a
// connector's list item) against fields. Problems about a missing config
// point at owner.
func (l *loader) block(parent, owner *yaml.Node, path string, fields []core.Field) map[string]any {
	p, _ := l.lookup(parent, "config")
	return l.object(p.key, p.value, owner, path, fields, false, 1)
}

// configure runs a component's Configure and records each error it returns
// at the position its field path names below base.
func (l *loader) configure(root *yaml.Node, base string, fn func() error) {
	l.fieldErrors(root, base, safeConfigure(fn))
}

// fieldErrors records each error of err at the position its field path
// names below base, or at the nearest part of the document that exists.
func (l *loader) fieldErrors(root *yaml.Node, base string, err error) {
	for _, fp := range fieldProblems(err, base) {
		key, val := l.locate(root, fp.path)
		l.problem(key, val, fp.path, "%s", fp.msg)
	}
}

type fieldProblem struct{ path, msg string }

// fieldProblems flattens joined errors into messages with paths below base,
// following nested *core.FieldError values.
func fieldProblems(err error, base string) []fieldProblem {
	var out []fieldProblem
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if !errors.As(e, &fe) {
			out = append(out, fieldProblem{base, e.Error()})
			continue
		}
		p := joinPath(base, fe.Path)
		if fe.Err == nil {
			out = append(out, fieldProblem{p, "invalid value"})
			continue
		}
		sub := core.Flatten(fe.Err)
		var inner *core.FieldError
		if len(sub) > 1 || errors.As(fe.Err, &inner) {
			out = append(out, fieldProblems(fe.Err, p)...)
			continue
		}
		out = append(out, fieldProblem{p, fe.Err.Error()})
	}
	return out
}

// safeConfigure calls fn, turning a panic into an error: a component's bug
// must not take the loader down.
func safeConfigure(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("configuration check crashed: %v (a bug in the component; report it)", r)
		}
	}()
	return fn()
}

// secretsBelow returns the secret field paths under prefix, relative to it.
func (l *loader) secretsBelow(prefix string) []string {
	var out []string
	for p := range l.secrets {
		if rest, ok := strings.CutPrefix(p, prefix); ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "[")) {
			out = append(out, strings.TrimPrefix(rest, "."))
		}
	}
	sort.Strings(out)
	return out
}

// knownTypes completes an "unknown type" message with a suggestion and the
// registered types.
func knownTypes(typ string, known []string, kind string) string {
	if len(known) == 0 {
		return fmt.Sprintf(": this build registers no %s types; import a package that registers them", kind)
	}
	return fmt.Sprintf("%s; known types: %s", didYouMean(typ, known), strings.Join(known, ", "))
}

func copyMap(m map[string]any) map[string]any {
	out, _ := copyAny(m).(map[string]any)
	return out
}

// NewSource returns a new, configured source of the connector's type. The
// runtime calls it to build the instance it runs; Load has already checked
// that Configure accepts the configuration.
func (c ConnectorConfig) NewSource(reg *core.Registry) (core.Source, error) {
	if reg == nil {
		reg = core.DefaultRegistry
	}
	spec, ok := reg.Source(c.Type)
	if !ok {
		return nil, fmt.Errorf("create connector %q: unknown connector type %q", c.Name, c.Type)
	}
	src := spec.New()
	if err := src.Configure(core.NewConfig(c.Config.Name, copyMap(c.Config.Values))); err != nil {
		return nil, fmt.Errorf("configure connector %q: %w", c.Name, err)
	}
	return src, nil
}

// NewStream returns a new, configured stream of the configured type.
func (s StreamConfig) NewStream(reg *core.Registry) (core.Stream, error) {
	if reg == nil {
		reg = core.DefaultRegistry
	}
	spec, ok := reg.Stream(s.Type)
	if !ok {
		return nil, fmt.Errorf("create stream: unknown stream type %q", s.Type)
	}
	st := spec.New()
	if err := st.Configure(core.NewConfig("stream", copyMap(s.Config.Values))); err != nil {
		return nil, fmt.Errorf("configure stream %q: %w", s.Type, err)
	}
	return st, nil
}
