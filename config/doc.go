// Package config loads and validates the sidecar's YAML configuration.
//
// Load reads a file, resolves ${VAR}, ${VAR:-default} and ${file:path}
// references in its values, checks every key against the file format and
// against the fields each registered stream and connector type declares
// (core.Field) and, for a connector that carries another program's settings
// (Nested, the plugin connector), against the fields its manifest declares,
// calls each component's Configure, builds the catalog and compiles the
// rules. It reports every problem at once, each with its file,
// line, column and field path, as an *Error. Schema derives the JSON Schema
// of the file from the same declarations, for editors.
//
// README.md documents the file format with an annotated example.
package config
