package config

import (
	"fmt"
	"strings"

	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
	"go.yaml.in/yaml/v3"
)

// Compiled holds what Load compiled from the configuration: the catalog's
// schemas and every connector's rules, type-checked.
type Compiled struct {
	// Catalog is the compiled catalog (empty when none is declared).
	Catalog *catalog.Catalog
	// Rules holds each connector's compiled emit rules, by connector name.
	Rules map[string]*rules.Set
}

// compile builds the catalog and compiles every connector's rules, mapping
// their field errors to positions under "catalog" and "connectors[i].emit".
// A part whose own keys already have problems is not compiled: its errors
// would only repeat them.
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
	for i, c := range cfg.Connectors {
		base := fmt.Sprintf("connectors[%d].emit", i)
		if c.Name == "" || !l.cleanBelow(base) {
			continue
		}
		// With a broken catalog, rules compile against none: their own
		// mistakes still show, and unknown types wait for the catalog fix.
		var set *rules.Set
		err := safeConfigure(func() error {
			var err error
			set, err = rules.Compile(c.Name, c.Emit, cat)
			return err
		})
		l.fieldErrors(root, base, err)
		if err == nil {
			cfg.Compiled.Rules[c.Name] = set
		}
	}
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
