package config

import (
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/lifecycle"
	"go.yaml.in/yaml/v3"
)

// compileEntities parses and checks the entities section (see
// catalog.ParseEntities) and compiles its id expressions, reporting each
// problem at its line. Event types are checked against the catalog when
// the file declares one.
func (l *loader) compileEntities(cfg *Config, root *yaml.Node, declared []string) {
	key, val := l.locate(root, "entities")
	if key == nil || isNull(val) || !l.cleanBelow("entities") {
		return
	}
	opts := catalog.EntityOptions{Suggest: suggest}
	if len(cfg.Catalog) > 0 {
		opts.Types, opts.Suggest = declared, suggestDotted
		// States and keys are plain words: suggest them as such.
		opts.Suggest = func(word string, candidates []string) string {
			if len(candidates) > 0 && candidates[0] == declared[0] {
				return suggestDotted(word, candidates)
			}
			return suggest(word, candidates)
		}
	}
	ents, probs := catalog.ParseEntities(val, opts)
	if len(probs) == 0 {
		var machines []*lifecycle.Machine
		machines, probs = lifecycle.Compile(ents)
		cfg.Compiled.Lifecycle = machines
	}
	for _, p := range probs {
		l.problemAt(p.Line, p.Column, joinPath("entities", p.Path), "%s", p.Message)
	}
}
