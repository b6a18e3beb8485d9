package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/rules"
	"go.yaml.in/yaml/v3"
)

// Compiled holds what Load compiled from the configuration: the catalog's
// schemas, every connector's rules and every sink's expressions,
// type-checked.
type Compiled struct {
	// Catalog is the compiled catalog (empty when none is declared).
	Catalog *catalog.Catalog
	// Rules holds each connector's compiled emit rules, by connector name.
	Rules map[string]*rules.Set
	// Sinks holds each sink's compiled when and map, by sink name.
	Sinks map[string]SinkPrograms
	// Lifecycle holds the compiled state machines of the entities
	// section, in file order (empty when none is declared).
	Lifecycle []*lifecycle.Machine
}

// compile builds the catalog and compiles every connector's rules, mapping
// their field errors to positions under "catalog" and "connectors[i].emit".
// A part whose own keys already have problems is not compiled: its errors
// would only repeat them. Rule types are checked against the types the
// catalog declares even when the catalog has problems (a schema file that
// cannot be read, say), so one run reports both.
func (l *loader) compile(cfg *Config, root *yaml.Node) {
	cfg.Compiled.Rules = map[string]*rules.Set{}
	var cat *catalog.Catalog
	if l.cleanBelow("catalog") {
		var c *catalog.Catalog
		err := safeConfigure(func() error {
			var err error
			c, err = catalog.New(cfg.Catalog, cfg.Dir)
			return err
		})
		l.fieldErrors(root, "catalog", err)
		if err == nil {
			cat = c
		}
	}
	cfg.Compiled.Catalog = cat
	declared := declaredTypes(cfg.Catalog)
	for i, c := range cfg.Connectors {
		base := fmt.Sprintf("connectors[%d].emit", i)
		compile := c.Name != "" && l.cleanBelow(base)
		// The catalog, when the file has one, decides which types rules
		// may emit; rules.Compile's own verdict on a type is left out so
		// that each mistake is reported once, with a suggestion.
		checked := map[string]bool{}
		if len(cfg.Catalog) > 0 {
			for j, r := range c.Emit {
				at := fmt.Sprintf("[%d].type", j)
				if r.Type == "" {
					continue
				}
				checked[at] = true
				if !slices.Contains(declared, r.Type) {
					key, val := l.locate(root, base+at)
					l.problem(key, val, base+at, "type %q is not in the catalog%s: declare it there, or use one of %s", r.Type, typeSuggestion(r.Type, declared), typeList(declared))
				}
			}
		}
		if !compile {
			continue
		}
		// With a broken catalog, rules compile against none: their own
		// mistakes still show.
		var set *rules.Set
		err := safeConfigure(func() error {
			var err error
			set, err = rules.Compile(c.Name, c.Emit, cat)
			return err
		})
		for _, fp := range fieldProblems(err, "") {
			if checked[fp.path] {
				continue
			}
			p := joinPath(base, fp.path)
			key, val := l.locate(root, p)
			l.problem(key, val, p, "%s", fp.msg)
		}
		if err == nil {
			cfg.Compiled.Rules[c.Name] = set
		}
	}
	l.compileSinks(cfg, root)
	l.compileEntities(cfg, root, declared)
}

// declaredTypes returns the distinct, non-empty event types the catalog
// names, in file order, whether or not their entries have problems.
func declaredTypes(entries []core.EventType) []string {
	var out []string
	for _, e := range entries {
		if e.Type != "" && !slices.Contains(out, e.Type) {
			out = append(out, e.Type)
		}
	}
	return out
}

// typeSuggestion returns ` (did you mean "x"?)` for the declared type
// closest to typ, or "".
func typeSuggestion(typ string, declared []string) string {
	if s := suggestDotted(typ, declared); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// typeList quotes up to eight types for a message, or says there are none.
func typeList(types []string) string {
	if len(types) == 0 {
		return "the types it declares (it declares none yet)"
	}
	shown := types[:min(len(types), 8)]
	list := quoteList(shown)
	if len(types) > len(shown) {
		list += fmt.Sprintf(" and %d more", len(types)-len(shown))
	}
	return list
}

// cleanBelow reports whether no problem was recorded at or below path.
func (l *loader) cleanBelow(path string) bool {
	if l.dropped > 0 {
		return false
	}
	for _, p := range l.problems {
		if p.Field == path || strings.HasPrefix(p.Field, path+".") || strings.HasPrefix(p.Field, path+"[") {
			return false
		}
	}
	return true
}
