package config

import "go.yaml.in/yaml/v3"

// Compiled holds what Load compiled from the catalog and the rules.
type Compiled struct{}

// compile builds the catalog and compiles every connector's rules.
func (l *loader) compile(cfg *Config, root *yaml.Node) {}
