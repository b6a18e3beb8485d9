// Package rules turns a Change into CloudEvents, driven by a connector's
// `emit` rules: when a change matters, which event type it becomes, and how
// the event's subject, partition key, time and data are computed.
//
// [Compile] checks and compiles a connector's rules once, when the
// configuration loads; [Set.Apply] runs them on each change and yields one
// [Result] per rule that applies: an event, or the reason there is none
// (a [RuleError], or a *catalog.ValidationError when the data breaks its
// type's schema). The runtime sends failures to the dead-letter stream with
// the data, the rule and the raw change.
//
// # Expression language
//
// Expressions are written in expr (github.com/expr-lang/expr): compiled to
// bytecode once, statically type-checked against the variables below when
// the configuration loads, Go-like in syntax so that integration engineers
// read them easily, and fast (tens of nanoseconds for a simple expression).
// CEL was the alternative; its protobuf type system adds weight without
// benefit for JSON-like records.
//
// # Variables
//
//	op         string          create, update, delete, read, truncate or message
//	key        map[string]any  the record's key columns
//	before     map[string]any  the record before an update or delete
//	after      map[string]any  the record after a create or update
//	payload    any             a pushed message body (a parsed webhook)
//	meta       map[string]any  mechanism details: HTTP headers, file names
//	source.system, source.schema, source.table, source.endpoint, source.tx_id  string
//	source.commit_time         time.Time, zero when unknown
//	position   string          the change's position, printable ("v1:0/16B3748")
//	connector  string          the connector's name
//
// A record that is absent is a nil map: before == nil holds on a create,
// after == nil on a delete, and reading a field of it gives nil: after.id
// on a delete is nil, never a panic. An absent record copied into data
// (data: {before: before}) is JSON null, never {}; string(before) is "". Going one level deeper into a
// missing value is a run-time error (after.customer.name when customer is
// missing); write after?.customer?.name to get nil instead, and
// coalesce(after?.customer?.name, "unknown") for a default. Fields whose
// names are not identifiers are read as after["Order No"].
//
// Values keep the types the source gave them: strings, bool, int64,
// json.Number (exact numbers, as decimal and large integer columns arrive),
// float64, time.Time, []byte, nested maps and lists.
//
// # Numbers
//
// A number copied into data is copied exactly: a json.Number such as
// 12345678901234567890.123 reaches the event's JSON with every digit. Only
// arithmetic and comparison convert: where an operand of + - * / % ** < > <=
// >= == != or in (or of abs, ceil, floor, round, max, min) is a field, a
// json.Number in it is read as an int when integral and fitting 64 bits,
// else as a float64. So after.qty * after.price and after.total > 100 work
// on exact columns, with float64 precision. A json.Number field compared
// with a string is a number, so write string(after.code) == "42" for text.
// Use decimal(x) to emit a number exactly from text.
//
// # Functions
//
// All of expr's builtins are available (lower, upper, trim, split, replace,
// len, now, date, duration, abs, round, filter, map, any, all, ...; see
// expr's language definition), except that the conversions below replace
// expr's own int, float and string. Added:
//
//	coalesce(a, b, ...)  the first argument that is not nil nor a blank string; else the last
//	blank(x)             whether x is nil, or a string or bytes of only white space
//	string(x), toString(x)  text: numbers exactly, times in RFC 3339, bytes as UTF-8, nil as "", maps and lists as JSON
//	int(x)               an int from a number, json.Number or numeric text; fractions truncate
//	float(x)             a float64 from a number, json.Number or numeric text
//	number(x)            an int when integral, else a float64, from a number or numeric text
//	decimal(x)           an exact JSON number (json.Number) from text or a number: decimal(" 12.50 ") emits 12.50
//	bool(x)              true for true, 1, "1", "y", "yes", "t", "true", "on"; false for false, 0, nil, "", "0", "n", "no", "f", "false", "off" (any case); else an error
//	fromUnix(x)          the time x seconds after the Unix epoch, UTC
//	fromUnixMilli(x)     the time x milliseconds after the Unix epoch, UTC
//	json(x)              x encoded as JSON text
//	parseJSON(s)         the value of the JSON text s, numbers exact
//	changed("field")     whether before and after differ in field (numbers compare by value)
//	deadLetter(reason)   sends the change to the dead-letter stream instead of emitting this rule's event (see Dead letters)
//
// # Rules
//
// Each rule has a name (lowercase letters, digits and '_', unique in the
// connector, part of every event id), a type, and expressions:
//
//   - when: a boolean; the rule applies only when it holds. Empty means
//     always.
//   - subject, partition_key: any scalar, rendered as text by the rules of
//     string(x); nil omits the attribute. Legacy keys are often integers, so
//     partition_key: after.id just works. An object or a list is an error.
//   - time: a time.Time or an RFC 3339 string; empty or nil means the
//     change's commit time, else the time the change was processed.
//   - source: the CloudEvents source, an expression like the others (a
//     constant is a quoted string, '"/erp/orders"'); the default is
//     "/tributary/<connector>".
//   - data: one expression (data: after), or a mapping, nested as deep as
//     needed, whose leaves are expressions; lists hold expressions too.
//     Numbers, booleans and null in the YAML are constants; a YAML string is
//     always an expression, so a constant string is quoted inside:
//     origin: '"erp"'.
//
// The event's data is the data value, normalized (times become RFC 3339
// strings, bytes base64, numbers stay exact) and encoded as JSON with keys
// sorted, so that equal changes give byte-equal events. Its id is
// core.EventID(connector, position, rule name): a change delivered twice
// yields the same ids.
//
// # Dead letters
//
// A rule's Result is a dead letter, with the data as built, the rule and
// the raw change, when an expression fails at run time (*RuleError), when
// the data breaks its type's schema (*catalog.ValidationError), or on
// purpose (*DeadLetterError): an expression that calls deadLetter(reason)
// stops the rule there and dead-letters the change with the reason,
// rendered as text. It is usable in any expression, so a rule can refuse
// the changes it cannot turn into a valid event rather than let them pass
// silently:
//
//	when: meta.parse_error == nil || deadLetter(meta.parse_error)
//	data:
//	  total: 'after.total >= 0 ? decimal(after.total) : deadLetter("negative total")'
//
// A change whose source could not read it (core.Change.Invalid, such as a
// line of a file that does not parse) runs no rule: it yields one Result,
// Rule InvalidRule ("invalid"), with a *DeadLetterError whose Reason is
// the change's Invalid.
//
// # Catalog
//
// When the catalog declares any type, every rule's type must be one of them
// (checked by Compile), events carry the type's dataschema URI, and their
// data is validated against the type's schema; a violation yields a Result
// with a *catalog.ValidationError and the data, and no event. With an empty
// (or nil) catalog, rules may emit any well-formed type, unvalidated: handy
// to start wrapping a system before the organisation agrees on schemas.
//
// # Expressions over an event
//
// A sink's when and map, and a sink's own expression-valued keys (an HTTP
// sink's url and headers), are expressions over an event read from the
// stream, in the same language, with the same functions (except changed,
// which needs a change's before and after) and the same conventions for
// numbers. They see:
//
//	event.id, event.type, event.source, event.subject     string
//	event.time               time.Time, zero when the event has none
//	event.data               any     the event's data: its JSON decoded, numbers exact as json.Number
//	event.partitionkey, event.dataschema, event.datacontenttype  string; "" when absent
//	sink                     string  the sink's name
//
// The data is decoded as JSON when the event's datacontenttype is unset or
// names JSON, and is its text otherwise; an event with no data has a nil
// event.data. Reading a missing field of the data gives nil
// (event.data.note); going below a missing value is a run-time error
// (event.data.customer.name when customer is missing): write
// event.data?.customer?.name to get nil instead.
//
// [CompileEvent] compiles and type-checks one expression when the
// configuration loads: an unknown variable or attribute, or a syntax
// error, is a *core.FieldError at the expression's path, naming the
// column. [CompileEventCondition] also checks that it gives a boolean, as
// a when must. [CompileEventData] compiles a map: one expression, or a
// mapping, nested as deep as needed, whose leaves are expressions, as a
// rule's data is; its value is JSON-compatible, exact numbers kept.
//
// A failure at run time is an *EventError naming the expression's path,
// the column and the event's id; an expression that calls
// deadLetter(reason) fails with a *DeadLetterError inside it, and the sink
// dead-letters the event with the reason.
//
// Decoding the data is most of the cost of evaluating expressions over an
// event, so it is done once per event: evaluate a sink's programs in one
// [EventEnv], made with [NewEventEnv] or Reset for each event, and the
// first expression that reads event.data decodes it for all of them; an
// expression that reads none of it decodes nothing. [SinkFuncs] gives a
// sink's when and map as the runtime's Filter and Map, sharing one
// EventEnv. An expression that
// only names a variable or a field below event.data (most of a map) is
// read without the VM. On one core of a 2-core machine,
// BenchmarkEventSink (a when, a URL and a 10-field map over a 1 KB event)
// runs at about 60,000 events per second of CPU time, three times what
// evaluating each program on its own (BenchmarkEventSinkUnshared) gives.
//
// # Concurrency and cost
//
// A Set is immutable; Apply is safe for concurrent use. Each call borrows a
// VM and scratch buffers from a pool. Expressions that read one record
// field (after.total) or a path into a pushed payload (payload.order.id,
// len(payload.order.lines)), and simple comparisons and concatenations of
// strings (op == "create" && after.status == "NEW", "orders/" +
// after.id), bypass the VM. A data mapping is validated and encoded from
// its values, without the object being built. On one core of a 2-core
// machine, BenchmarkApply10Fields (when, subject, partition key, a
// 10-field mapping, schema validation and JSON encoding) runs at about
// 200,000 events per second of CPU time.
//
// [Set.PayloadPaths] lists the paths into payloads the set's expressions
// read (whole, or only their len()), or says that some expression reads a
// payload as a whole ($env, payload passed to a function, a computed
// field): the runtime passes them to a source that can build only those
// parts of each payload (core.PayloadPruner), as the webhook adapter does.
package rules
