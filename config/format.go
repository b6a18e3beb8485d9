package config

import "github.com/tributary/tributary/core"

// Defaults of the file format.
const (
	DefaultStateDir        = ".tributary"
	DefaultAdminAddress    = "127.0.0.1:9464"
	DefaultHTTPAddress     = "127.0.0.1:8080"
	DefaultStreamType      = "embedded"
	DefaultTopic           = "tributary.events"
	DefaultDeadLetterTopic = "tributary.deadletter"
	DefaultMaxInFlight     = 10000
)

// Where a sink's consumer group starts when it has no committed offsets
// (sinks[].start).
const (
	// SinkStartBeginning delivers every event the stream still holds.
	SinkStartBeginning = "beginning"
	// SinkStartEnd delivers only events appended from then on.
	SinkStartEnd = "end"
)

// Exporters of tracing.exporter.
const (
	// TracingOTLP exports spans over OTLP.
	TracingOTLP = "otlp"
	// TracingNone never traces.
	TracingNone = "none"
)

// Topic modes of stream.topics.mode.
const (
	// TopicsPerType sends each event type to its own topic, named prefix +
	// event type.
	TopicsPerType = "per_type"
	// TopicsSingle sends every event to one topic, stream.topics.name.
	TopicsSingle = "single"
)

// ruleFields declares one emit rule (core.Rule).
func ruleFields() []core.Field {
	return []core.Field{
		{Name: "name", Type: core.TypeString, Required: true, Doc: "Identifies the rule within its connector; part of every event id it emits, so renaming it changes ids.", Example: "order_accepted"},
		{Name: "when", Type: core.TypeString, Doc: "Boolean expression; the rule applies to a change only when it is true. Empty means always.", Example: `op == "create"`},
		{Name: "type", Type: core.TypeString, Required: true, Doc: "The event type emitted, declared in the catalog.", Example: "com.acme.order.accepted"},
		{Name: "subject", Type: core.TypeString, Doc: "String expression for the CloudEvents subject.", Example: "after.id"},
		{Name: "partition_key", Type: core.TypeString, Doc: "String expression for the partition key, the business key that keeps related events in order.", Example: "string(after.order_id)"},
		{Name: "time", Type: core.TypeString, Doc: "Expression for the event time; empty means the change's commit time, or the time it was read."},
		{Name: "data", Type: core.TypeAny, Doc: "The event's data: a single expression, or a mapping whose values are expressions or nested mappings."},
		{Name: "source", Type: core.TypeString, Doc: `Overrides the CloudEvents source; the default is "/tributary/<connector>".`},
	}
}

// eventTypeFields declares one catalog entry (core.EventType).
func eventTypeFields() []core.Field {
	return []core.Field{
		{Name: "type", Type: core.TypeString, Required: true, Doc: "The CloudEvents type, such as com.acme.order.accepted.", Example: "com.acme.order.accepted"},
		{Name: "version", Type: core.TypeString, Required: true, Doc: "The schema's version; part of the dataschema URI.", Example: "1.0"},
		{Name: "description", Type: core.TypeString, Doc: "The business fact the event records."},
		{Name: "schema", Type: core.TypeAny, Doc: "The JSON Schema of the event's data, inline. Set exactly one of schema and schema_file."},
		{Name: "schema_file", Type: core.TypeString, Doc: "Path to the JSON Schema of the event's data (JSON or YAML), relative to the configuration file.", Example: "schemas/order_accepted.json"},
	}
}

// sinkFields declares one sink (SinkConfig). Left-out concurrency,
// max_batch and retry take the runtime's defaults, which their docs name.
func sinkFields() []core.Field {
	return []core.Field{
		{Name: "name", Type: core.TypeString, Required: true, Doc: "Unique sink name, lowercase snake_case; the sink's consumer group is tributary.sink.<name>, so renaming it starts a new group.", Example: "warehouse"},
		{Name: "type", Type: core.TypeString, Required: true, Doc: "A registered sink type.", Example: "http"},
		{Name: "events", Type: core.TypeStrings, Doc: "Event types delivered, as globs: * matches any characters, ? one, [abc] one of a set, as in com.acme.order.*; left out, every type.", Example: "[com.acme.order.*]"},
		{Name: "subjects", Type: core.TypeStrings, Doc: "Event subjects delivered, as globs (the same syntax as events), such as [A-*]; left out, every subject.", Example: "[A-*]"},
		{Name: "when", Type: core.TypeString, Doc: "Boolean expression over event and sink; only events for which it is true are delivered, the others are skipped. Empty means every event.", Example: "event.data.total > 100"},
		{Name: "map", Type: core.TypeAny, Doc: "What the sink delivers instead of the event: an expression, or a mapping whose values are expressions or nested mappings, over event and sink. Left out, the event as it is."},
		{Name: "retry", Type: core.TypeObject, Doc: "How often an event that was not delivered is tried again before it goes to the dead-letter topic.", Fields: []core.Field{
			{Name: "schedule", Type: core.TypeStrings, Doc: "Delays between attempts, each a positive duration; after the last, the event goes to the dead-letter topic. Left out, 5s, 5m, 30m, 2h, 5h, then 10h seven times (over 72h in all); [] retries nothing.", Example: "[5s, 1m, 10m]"},
		}},
		{Name: "concurrency", Type: core.TypeInt, Doc: "Most deliveries in progress at once, across partition keys (events of one key go one after another); left out, 16, or the sink type's own (sql: 4).", Example: "16"},
		{Name: "max_batch", Type: core.TypeInt, Doc: "Most events handed to the sink in one call; left out, 64, or the sink type's own (sql: 1024, 256 in upsert mode).", Example: "64"},
		{Name: "start", Type: core.TypeString, Default: SinkStartBeginning, Enum: []string{SinkStartBeginning, SinkStartEnd}, Doc: "Where a sink without committed offsets starts: beginning delivers every event the stream still holds, end only new ones."},
		{Name: "disabled", Type: core.TypeBool, Default: false, Doc: "Keep the sink in the file without running it."},
		{Name: "config", Type: core.TypeAny, Doc: "The sink type's own settings."},
	}
}

// fileFields declares the configuration file's own keys. The config blocks
// of the stream and of each connector are declared "any" here and checked
// against their registered type's fields afterwards.
func fileFields() []core.Field {
	return []core.Field{
		{Name: "version", Type: core.TypeInt, Default: 1, Doc: "Version of the file format. Only 1 is known."},
		{Name: "state_dir", Type: core.TypeString, Default: DefaultStateDir, Doc: "Directory for local state (checkpoints and data of the embedded stream, connector state). Relative paths start from the configuration file's directory."},
		{Name: "log", Type: core.TypeObject, Doc: "Logging.", Fields: []core.Field{
			{Name: "level", Type: core.TypeString, Default: "info", Enum: []string{"debug", "info", "warn", "error"}, Doc: "Lowest level logged."},
			{Name: "format", Type: core.TypeString, Default: "text", Enum: []string{"text", "json"}, Doc: "Log line format."},
		}},
		{Name: "admin", Type: core.TypeObject, Doc: "The admin HTTP server: health, status, metrics and the /v1 API.", Fields: []core.Field{
			{Name: "address", Type: core.TypeString, Default: DefaultAdminAddress, Doc: `Listen address (host:port); "" disables the admin server. An address that is not loopback needs auth.tokens.`},
			{Name: "auth", Type: core.TypeObject, Doc: "Bearer tokens for the admin API. With none, the API answers loopback clients only and the sidecar refuses an admin address that is not loopback.", Fields: []core.Field{
				{Name: "tokens", Type: core.TypeObjects, Doc: "The accepted tokens, several for rotation (add the new one, move clients over, remove the old one).", Fields: []core.Field{
					{Name: "name", Type: core.TypeString, Required: true, Doc: "Who holds the token, for the log of actions (the token itself is never logged)."},
					{Name: "role", Type: core.TypeString, Default: RoleRead, Enum: []string{RoleRead, RoleOperator}, Doc: "read: GET only; operator: also pause, resume, restart, replay."},
					{Name: "token", Type: core.TypeString, Required: true, Secret: true, Example: "${env:TRIBUTARY_ADMIN_TOKEN}", Doc: "The token, from the environment (${env:NAME}) or a file (${file:PATH}); at least 16 characters."},
				}},
				{Name: "open_paths", Type: core.TypeStrings, Default: []any{"/healthz", "/readyz", "/metrics"}, Doc: "Paths answered without a token (exact paths)."},
			}},
			{Name: "debug", Type: core.TypeBool, Default: false, Doc: "Serve Go's runtime profiles under /debug/pprof/ (CPU, heap, allocations, goroutines, mutexes, execution trace) to loopback clients and operator tokens, such as `go tool pprof http://127.0.0.1:9464/debug/pprof/profile?seconds=10`. A CPU profile or trace costs a few percent while it runs; nothing when none does."},
		}},
		{Name: "http", Type: core.TypeObject, Doc: "The shared HTTP listener that webhook connectors mount their endpoints on.", Fields: []core.Field{
			{Name: "address", Type: core.TypeString, Default: DefaultHTTPAddress, Doc: "Listen address (host:port)."},
			{Name: "tls", Type: core.TypeObject, Doc: "Serve HTTPS. Set both files or neither.", Fields: []core.Field{
				{Name: "cert_file", Type: core.TypeString, Doc: "PEM certificate chain file, relative to the configuration file's directory."},
				{Name: "key_file", Type: core.TypeString, Doc: "PEM private key file, relative to the configuration file's directory."},
			}},
			{Name: "read_timeout", Type: core.TypeDuration, Default: "10s", Doc: "Longest time to read a request, body included."},
		}},
		{Name: "memory", Type: core.TypeObject, Doc: "The Go runtime's memory.", Fields: []core.Field{
			{Name: "limit", Type: core.TypeString, Default: "", Example: "64MiB", Doc: "Soft limit on the Go runtime's memory (heap and stacks; not the binary's mapped code nor SQLite's page caches), written as GOMEMLIMIT is (bytes, or with a unit: 48MiB, 1GiB), or off; empty: 64MiB. The garbage collector works harder as the heap nears it, and it rises to twice the live heap while that needs more; below the limit, the heap's room beyond the live heap is sized so that collection takes about 3% of a core, between GOGC=100 and GOGC=200. GOMEMLIMIT in the environment wins."},
			{Name: "release_startup_code", Type: core.TypeBool, Default: true, Doc: "Once the sidecar is ready (or 10 s after it starts), drop the binary's code and read-only data from its resident memory (Linux: madvise MADV_DONTNEED on the executable's read-only mappings; the page cache keeps them). Start-up runs the initialisation of every package linked in, and the kernel maps each touched page-cache folio whole, so most of the code stays resident though it never runs again (32–38 MB of the full build); what the sidecar still runs faults back in from the page cache (21–27 MB under the webhook benchmark). A process a debugger traces is left alone; false keeps every page."},
		}},
		{Name: "shutdown", Type: core.TypeObject, Doc: "Graceful shutdown.", Fields: []core.Field{
			{Name: "timeout", Type: core.TypeDuration, Default: "30s", Doc: "Longest time to drain in-flight events and commit checkpoints after a stop signal."},
		}},
		{Name: "tracing", Type: core.TypeObject, Doc: "OpenTelemetry traces of every change (read, map, validate, publish, ack), exported over OTLP. Off unless exporter is otlp here or the standard OTEL_* variables turn it on (OTEL_TRACES_EXPORTER=otlp, or an OTEL_EXPORTER_OTLP_ENDPOINT); OTEL_SDK_DISABLED=true turns it off.", Fields: []core.Field{
			{Name: "exporter", Type: core.TypeString, Default: "", Enum: []string{"", TracingOTLP, TracingNone}, Doc: `otlp: export spans over OTLP; none: never trace, whatever the environment says; "" (the default): as the OTEL_* variables say.`},
			{Name: "endpoint", Type: core.TypeString, Doc: "Collector URL, such as http://127.0.0.1:4318 (http/protobuf: without a path, spans go to its /v1/traces) or http://127.0.0.1:4317 (grpc); empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, or the exporter's default."},
			{Name: "protocol", Type: core.TypeString, Enum: []string{"", "http/protobuf", "grpc"}, Doc: "OTLP transport; empty: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, or http/protobuf."},
			{Name: "sample_ratio", Type: core.TypeFloat, Default: 1.0, Doc: "Share of changes traced (0 to 1), unless the change carries a sampled trace context, which is always followed."},
			{Name: "service_name", Type: core.TypeString, Doc: "The service.name resource attribute; empty: OTEL_SERVICE_NAME, or tributary."},
		}},
		{Name: "stream", Type: core.TypeObject, Doc: "The shared stream events go to.", Fields: []core.Field{
			{Name: "type", Type: core.TypeString, Default: DefaultStreamType, Doc: "A registered stream type."},
			{Name: "topics", Type: core.TypeObject, Doc: "How events map to topics.", Fields: []core.Field{
				{Name: "mode", Type: core.TypeString, Default: TopicsPerType, Enum: []string{TopicsPerType, TopicsSingle}, Doc: "per_type: one topic per event type, named prefix + event type; single: every event on the topic called name."},
				{Name: "prefix", Type: core.TypeString, Default: "", Doc: "Prefix of per-type topic names."},
				{Name: "name", Type: core.TypeString, Default: DefaultTopic, Doc: "The topic of single mode."},
			}},
			{Name: "dead_letter_topic", Type: core.TypeString, Default: DefaultDeadLetterTopic, Doc: "Topic of events and changes that could not be mapped or failed their schema."},
			{Name: "config", Type: core.TypeAny, Doc: "The stream type's own settings."},
		}},
		{Name: "catalog", Type: core.TypeObjects, Doc: "The event types connectors may emit, each with the JSON Schema of its data.", Fields: eventTypeFields()},
		{Name: "entities", Type: core.TypeAny, Doc: "Business entities (an order) and the state machines their events drive, by entity name: initial, final, states (with within limits), transitions by event type ({from: [...], to: state}), id (default event.subject), window and retention. The sidecar's lifecycle tracker follows every instance."},
		{Name: "connectors", Type: core.TypeObjects, Doc: "The systems watched, one entry per connector instance.", Fields: []core.Field{
			{Name: "name", Type: core.TypeString, Required: true, Doc: "Unique instance name, lowercase snake_case.", Example: "legacy_orders"},
			{Name: "type", Type: core.TypeString, Required: true, Doc: "A registered connector type.", Example: "webhook"},
			{Name: "config", Type: core.TypeAny, Doc: "The connector type's own settings."},
			{Name: "emit", Type: core.TypeObjects, Doc: "Rules that turn the connector's changes into events.", Fields: ruleFields()},
			{Name: "retry", Type: core.TypeObject, Doc: "Backoff between attempts after the connector fails.", Fields: []core.Field{
				{Name: "initial", Type: core.TypeDuration, Default: "1s", Doc: "First delay; it doubles after each failure."},
				{Name: "max", Type: core.TypeDuration, Default: "1m", Doc: "Longest delay."},
			}},
			{Name: "max_in_flight", Type: core.TypeInt, Default: DefaultMaxInFlight, Doc: "Changes read but not yet acknowledged before reading pauses (backpressure). Left out, a connector type may declare a lower default of its own (postgres_cdc: 1000, mysql_cdc: 2000, which bound a catch-up's memory; webhook: 2048, the rest waiting in its durable inbox)."},
			{Name: "on_publish_error", Type: core.TypeString, Default: "dead_letter", Enum: []string{"dead_letter", "stop"}, Doc: "What an event the stream refuses for good (larger than the broker accepts) does: go to the dead-letter topic with the reason, or stop the connector before it."},
			{Name: "disabled", Type: core.TypeBool, Default: false, Doc: "Keep the connector in the file without running it."},
		}},
		{Name: "sinks", Type: core.TypeObjects, Doc: "The systems events are delivered to, one entry per sink instance, each reading the stream through its own consumer group.", Fields: sinkFields()},
	}
}
