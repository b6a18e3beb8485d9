// Package catalog holds the event types an organisation agreed on, each with
// the JSON Schema its data must satisfy, and checks event data against them.
//
// A catalog is built once, from the `catalog` list of the configuration, by
// [New]. Every schema is compiled when the configuration loads, so a broken
// schema stops the sidecar before it starts rather than on the first event.
//
// # Schemas
//
// A schema is written inline (the `schema` key, YAML or JSON) or kept in a
// file (`schema_file`, a JSON file when its name ends in .json and a YAML file
// otherwise), resolved relative to the configuration file. A schema file may
// $ref other schema files by relative path, in JSON or YAML; an inline
// schema may $ref only absolute URLs, since it has no location of its own.
//
// Schemas default to JSON Schema draft 2020-12; a "$schema" keyword selects
// draft 4, 6, 7 or 2019-09 instead. The "format" keyword is asserted, not
// merely annotated (the 2020-12 default): a string declared with format
// date-time, date, time, duration, email, hostname, ipv4, ipv6, uri,
// uri-reference, uuid or regex must be one. Agreed event types are a
// contract, and a malformed timestamp or email address is exactly the kind
// of drift the catalog is there to catch.
//
// # Data schema URIs
//
// Every event of a catalogued type carries the CloudEvents dataschema
// attribute
//
//	urn:tributary:schema:<type>:<version>
//
// for example "urn:tributary:schema:com.acme.order.accepted:1". A URN rather
// than a URL, because the catalog is part of the configuration and has no
// server of its own; the URN names the exact schema version a consumer can
// look up in the same catalog.
//
// # Values
//
// Validate takes JSON-compatible values: nil, bool, string, json.Number, Go
// integers and floats, []any and map[string]any. [Normalize] turns other
// values (time.Time, []byte, YAML-decoded maps, typed slices) into such
// values.
package catalog
