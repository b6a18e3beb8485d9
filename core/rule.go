package core

// Rule is one `emit` rule of a connector, as written in YAML: when a change
// matters, which event type it becomes, and how the event's subject,
// partition key and data are computed. Every string except Name and Type is
// an expression, compiled and type-checked when the configuration loads.
//
// Expressions see the change as: op, key, before, after, payload, meta,
// source (system, schema, table, endpoint, commit_time, tx_id), position and
// connector.
type Rule struct {
	// Name identifies the rule within its connector. It is part of every
	// event id the rule emits, so renaming a rule changes its ids.
	Name string `yaml:"name" json:"name"`
	// When is a boolean expression; the rule applies to a change only when
	// it is true. Empty means always.
	When string `yaml:"when,omitempty" json:"when,omitempty"`
	// Type is the event type emitted, declared in the catalog.
	Type string `yaml:"type" json:"type"`
	// Subject is a string expression for the CloudEvents subject.
	Subject string `yaml:"subject,omitempty" json:"subject,omitempty"`
	// PartitionKey is a string expression for the partition key (the
	// business key that keeps related events in order).
	PartitionKey string `yaml:"partition_key,omitempty" json:"partition_key,omitempty"`
	// Time is an expression for the event time; empty means the change's
	// commit time, or the time it was read.
	Time string `yaml:"time,omitempty" json:"time,omitempty"`
	// Data shapes the event's data: a single expression (a string), or a
	// mapping whose values are expressions or nested mappings.
	Data any `yaml:"data,omitempty" json:"data,omitempty"`
	// Source overrides the CloudEvents source; the default is
	// "/tributary/<connector>". A URI reference (starting with "/" or
	// holding a scheme, such as "urn:acme:erp") is taken literally; any
	// other text is a string expression.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
}

// EventType is one entry of the catalog: an agreed event type with the JSON
// Schema its data must satisfy.
type EventType struct {
	// Type is the CloudEvents type, such as "com.acme.order.accepted".
	Type string `yaml:"type" json:"type"`
	// Version is the schema's version. It is part of the dataschema URI.
	Version string `yaml:"version" json:"version"`
	// Description says what business fact the event records.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Schema is the JSON Schema of the data, inline. Exactly one of Schema
	// and SchemaFile is set.
	Schema any `yaml:"schema,omitempty" json:"schema,omitempty"`
	// SchemaFile is a path to the JSON Schema (JSON or YAML), relative to
	// the configuration file.
	SchemaFile string `yaml:"schema_file,omitempty" json:"schema_file,omitempty"`
}
