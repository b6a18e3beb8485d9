package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/config"
)

// validYAML is the starting point of the table tests: each case breaks one
// thing. Line numbers are noted for the cases that refer to them.
const validYAML = `version: 1
state_dir: state
log: {level: info, format: json}
admin:
  address: 127.0.0.1:9464
http:
  address: 127.0.0.1:8080
  read_timeout: 5s
shutdown:
  timeout: 20s
stream:
  type: embedded
  topics: {mode: per_type, prefix: "acme."}
  config:
    fsync: true
catalog:
  - type: com.acme.order.accepted
    version: "1.0"
    schema: {type: object}
connectors:
  - name: legacy_orders
    type: webhook
    config:
      path: /hooks/orders
      secret: s3cret
      batch: 50
      interval: 10s
      tables:
        - name: orders
          key: [id]
    emit:
      - name: accepted
        type: com.acme.order.accepted
        when: op == "create"
        data: {id: after.id}
    retry: {initial: 2s, max: 30s}
  - name: billing
    type: webhook
    config: {path: /hooks/billing, secret: x}
    emit:
      - {name: billed, type: com.acme.order.accepted}
`

// edit replaces old, which must occur exactly once, by new.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("edit: %q occurs %d times in the document, want 1", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

func parse(t *testing.T, doc string) (*config.Config, error) {
	t.Helper()
	return config.Parse(filepath.Join(t.TempDir(), "tributary.yaml"), []byte(doc), testRegistry())
}

func problems(t *testing.T, err error) []config.Problem {
	t.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error = %v (%T), want *config.Error", err, err)
	}
	return ce.Problems
}

func TestValidConfig(t *testing.T) {
	cfg, err := parse(t, validYAML)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings = %v, want none", cfg.Warnings)
	}
	if got, want := cfg.StateDir, filepath.Join(cfg.Dir, "state"); got != want {
		t.Errorf("StateDir = %q, want %q", got, want)
	}
	if cfg.Log.Format != "json" || cfg.HTTP.ReadTimeout != 5*time.Second || cfg.Shutdown.Timeout != 20*time.Second {
		t.Errorf("log/http/shutdown = %+v %+v %+v", cfg.Log, cfg.HTTP, cfg.Shutdown)
	}
	if got := cfg.Stream.Topics.Topic("com.acme.order.accepted"); got != "acme.com.acme.order.accepted" {
		t.Errorf("topic = %q", got)
	}
	if len(cfg.Connectors) != 2 {
		t.Fatalf("connectors = %d, want 2", len(cfg.Connectors))
	}
	c := cfg.Connectors[0]
	if c.Name != "legacy_orders" || c.Config.Name != "legacy_orders" || c.Retry.Initial != 2*time.Second || c.Retry.Max != 30*time.Second {
		t.Errorf("connector = %+v", c)
	}
	if got := c.Config.Values["batch"]; got != 50 {
		t.Errorf("batch = %#v, want 50", got)
	}
	if got := c.Config.Values["interval"]; got != "10s" {
		t.Errorf("interval = %#v, want \"10s\"", got)
	}
	tables, _ := c.Config.Values["tables"].([]any)
	if len(tables) != 1 {
		t.Fatalf("tables = %#v", c.Config.Values["tables"])
	}
	if got := tables[0].(map[string]any)["key"]; len(got.([]any)) != 1 || got.([]any)[0] != "id" {
		t.Errorf("tables[0].key = %#v", got)
	}
	if len(c.Emit) != 1 || c.Emit[0].When != `op == "create"` || c.Emit[0].Data.(map[string]any)["id"] != "after.id" {
		t.Errorf("emit = %+v", c.Emit)
	}
	if len(cfg.Catalog) != 1 || cfg.Catalog[0].Version != "1.0" || cfg.Catalog[0].Schema.(map[string]any)["type"] != "object" {
		t.Errorf("catalog = %+v", cfg.Catalog)
	}
	if !cfg.Compiled.Catalog.Has("com.acme.order.accepted") || len(cfg.Compiled.Rules) != 2 || cfg.Compiled.Rules["billing"].Len() != 1 {
		t.Errorf("compiled = %+v", cfg.Compiled)
	}
	if cfg.Stream.Config.Name != "stream" || cfg.Stream.Config.Values["fsync"] != true || cfg.Stream.Config.Values["dir"] != "" {
		t.Errorf("stream config = %+v", cfg.Stream.Config)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		line     int
		col      int
		field    string
		message  string
	}{
		{
			name: "unknown top-level key", old: "shutdown:\n", new: "shutdwn:\n",
			line: 9, col: 1, field: "shutdwn",
			message: `unknown key "shutdwn" (did you mean "shutdown"?); known keys: admin, catalog, connectors, entities, http, log, memory, shutdown, sinks, state_dir, stream, tracing, version`,
		},
		{
			name: "unknown nested key", old: "  address: 127.0.0.1:8080", new: "  adress: 127.0.0.1:8080",
			line: 7, col: 3, field: "http.adress",
			message: `unknown key "adress" (did you mean "address"?); known keys: address, read_timeout, tls`,
		},
		{
			name: "unknown key in connector config", old: "      batch: 50", new: "      bach: 50",
			line: 26, col: 7, field: "connectors[0].config.bach",
			message: `unknown key "bach" (did you mean "batch"?); known keys: batch, extra, headers, interval, legacy_opt, mode, path, ratio, require_tls, secret, tables, tls, verify`,
		},
		{
			name: "unknown connector type", old: "    type: webhook\n    config:\n", new: "    type: webhok\n    config:\n",
			line: 22, col: 11, field: "connectors[0].type",
			message: `unknown connector type "webhok" (did you mean "webhook"?); known types: poller, webhook`,
		},
		{
			name: "unknown stream type", old: "type: embedded", new: "type: kafak",
			line: 12, col: 9, field: "stream.type",
			message: `unknown stream type "kafak" (did you mean "kafka"?); known types: embedded, kafka`,
		},
		{
			name: "missing required field", old: "      secret: s3cret\n", new: "",
			line: 23, col: 5, field: "connectors[0].config.secret",
			message: `required field "secret" is missing`,
		},
		{
			name: "required field without value", old: "      secret: s3cret\n", new: "      secret:\n",
			line: 25, col: 7, field: "connectors[0].config.secret",
			message: `required field "secret" has no value`,
		},
		{
			name: "missing required field of list item", old: "        - name: orders\n          key: [id]", new: "        - key: [id]",
			line: 29, col: 11, field: "connectors[0].config.tables[0].name",
			message: `required field "name" is missing`,
		},
		{
			name: "missing connector type", old: "  - name: billing\n    type: webhook\n", new: "  - name: billing\n",
			line: 37, col: 5, field: "connectors[1].type",
			message: `required field "type" is missing`,
		},
		{
			name: "bad enum", old: "level: info", new: "level: verbose",
			line: 3, col: 14, field: "log.level",
			message: `"verbose" is not one of "debug", "info", "warn", "error"`,
		},
		{
			name: "bad enum with suggestion", old: "mode: per_type", new: "mode: per_typ",
			line: 13, col: 18, field: "stream.topics.mode",
			message: `"per_typ" is not one of "per_type", "single" (did you mean "per_type"?)`,
		},
		{
			name: "bad duration", old: "read_timeout: 5s", new: "read_timeout: abc",
			line: 8, col: 17, field: "http.read_timeout",
			message: `"abc" is not a duration (examples: 30s, 5m, 1h30m)`,
		},
		{
			name: "bad int", old: "batch: 50", new: "batch: many",
			line: 26, col: 14, field: "connectors[0].config.batch",
			message: `"many" is not an integer (example: 10)`,
		},
		{
			name: "bad int at top level", old: "version: 1", new: "version: one",
			line: 1, col: 10, field: "version",
			message: `"one" is not an integer (example: 10)`,
		},
		{
			name: "unsupported version", old: "version: 1", new: "version: 2",
			line: 1, col: 10, field: "version",
			message: `unsupported version 2: this build reads version 1`,
		},
		{
			name: "bad bool", old: "fsync: true", new: "fsync: maybe",
			line: 15, col: 12, field: "stream.config.fsync",
			message: `"maybe" is not a boolean: write true or false`,
		},
		{
			name: "mapping where a string belongs", old: "path: /hooks/orders", new: "path: {a: b}",
			line: 24, col: 13, field: "connectors[0].config.path",
			message: `expected a string, got a mapping`,
		},
		{
			name: "scalar where a list belongs", old: "key: [id]", new: "key: id",
			line: 30, col: 16, field: "connectors[0].config.tables[0].key",
			message: `expected a list of strings, such as [a, b], got "id"`,
		},
		{
			name: "list where a mapping belongs", old: "  config:\n    fsync: true\n", new: "  config: [fsync]\n",
			line: 14, col: 11, field: "stream.config",
			message: `expected a mapping with keys such as "dir", "fsync", got a list`,
		},
		{
			name: "secret value is not echoed", old: "secret: s3cret", new: "secret: [s3cret]",
			line: 25, col: 15, field: "connectors[0].config.secret",
			message: `expected a string, got a list`,
		},
		{
			name: "duplicate connector name", old: "  - name: billing", new: "  - name: legacy_orders",
			line: 37, col: 11, field: "connectors[1].name",
			message: `connector name "legacy_orders" is already used by connectors[0] (line 21); names must be unique`,
		},
		{
			name: "invalid connector name", old: "  - name: billing", new: "  - name: Billing-API",
			line: 37, col: 11, field: "connectors[1].name",
			message: `"Billing-API" is not a valid connector name: use lowercase letters, digits and underscores, starting with a letter (such as legacy_orders)`,
		},
		{
			name: "duplicate key", old: "      batch: 50\n", new: "      batch: 50\n      batch: 60\n",
			line: 27, col: 7, field: "connectors[0].config.batch",
			message: `key "batch" is set twice (first at line 26); remove one`,
		},
		{
			name: "unset variable", old: "secret: s3cret", new: "secret: ${TRIBUTARY_TEST_UNSET}",
			line: 25, col: 15, field: "connectors[0].config.secret",
			message: `environment variable "TRIBUTARY_TEST_UNSET" is not set: set it, or give a default with ${TRIBUTARY_TEST_UNSET:-default}`,
		},
		{
			name: "invalid reference", old: "secret: s3cret", new: "secret: ${not valid}",
			line: 25, col: 15, field: "connectors[0].config.secret",
			message: `invalid reference "${not valid}": write ${NAME}, ${NAME:-default} or ${file:/path/to/secret}, or $${ for a literal ${`,
		},
		{
			name: "unterminated reference", old: "secret: s3cret", new: "secret: ${OOPS",
			line: 25, col: 15, field: "connectors[0].config.secret",
			message: `unterminated reference "${OOPS": close it with "}", or write "$${" for a literal "${"`,
		},
		{
			name: "YAML syntax error", old: "  timeout: 20s", new: "  timeout: [20s",
			line: 10, col: 0, field: "",
			message: `invalid YAML: did not find expected ',' or ']'`,
		},
		{
			name: "second document", old: "shutdown:\n", new: "---\nshutdown:\n",
			line: 9, col: 1, field: "",
			message: `a second YAML document starts here; a configuration is one document: remove the "---" separator and what follows, or merge them`,
		},
		{
			name: "tls half set", old: "  read_timeout: 5s\n", new: "  read_timeout: 5s\n  tls: {cert_file: c.pem}\n",
			line: 9, col: 8, field: "http.tls",
			message: `set both cert_file and key_file, or neither (key_file is missing)`,
		},
		{
			name: "bad listen address", old: "address: 127.0.0.1:9464", new: "address: localhost",
			line: 5, col: 12, field: "admin.address",
			message: `"localhost" is not a listen address: write host:port, such as 127.0.0.1:8080 (":8080" listens on every interface)`,
		},
		{
			name: "retry max below initial", old: "retry: {initial: 2s, max: 30s}", new: "retry: {initial: 2s, max: 1s}",
			line: 36, col: 31, field: "connectors[0].retry.max",
			message: `1s is shorter than retry.initial (2s): raise max or lower initial`,
		},
		{
			name: "single topic without name", old: `topics: {mode: per_type, prefix: "acme."}`, new: `topics: {mode: single, name: ""}`,
			line: 13, col: 32, field: "stream.topics.name",
			message: `single mode needs a topic name, such as "tributary.events"`,
		},
		{
			name: "configure error on a list item field", old: "- name: orders", new: "- name: bad",
			line: 29, col: 17, field: "connectors[0].config.tables[0].name",
			message: `table "bad" does not exist in the mapping`,
		},
		{
			name: "configure error on an absent field", old: "      batch: 50\n", new: "      batch: 50\n      require_tls: true\n",
			line: 23, col: 5, field: "connectors[0].config.tls.cert_file",
			message: `required when require_tls is true`,
		},
		{
			name: "configure error without a field", old: "path: /hooks/orders", new: "path: /plain",
			line: 23, col: 5, field: "connectors[0].config",
			message: `plain error without a field`,
		},
		{
			name: "configure panic", old: "path: /hooks/orders", new: "path: /panic",
			line: 23, col: 5, field: "connectors[0].config",
			message: `configuration check crashed: boom (a bug in the component; report it)`,
		},
		{
			name: "stream configure error", old: "    fsync: true\n", new: "    fsync: true\n    dir: /forbidden\n",
			line: 16, col: 10, field: "stream.config.dir",
			message: `directory "/forbidden" is not writable`,
		},
		{
			name: "stream type with missing required field", old: "  type: embedded\n  topics: {mode: per_type, prefix: \"acme.\"}\n  config:\n    fsync: true\n", new: "  type: kafka\n  config: {}\n",
			line: 13, col: 3, field: "stream.config.brokers",
			message: `required field "brokers" is missing`,
		},
		{
			name: "missing config block", old: "    type: webhook\n    config: {path: /hooks/billing, secret: x}\n", new: "    type: poller\n",
			line: 37, col: 5, field: "connectors[1].config.url",
			message: `required field "url" is missing`,
		},
		{
			name: "rule expression does not compile", old: `when: op == "create"`, new: `when: op ==`,
			line: 34, col: 15, field: "connectors[0].emit[0].when",
			message: `expression "op ==" does not compile: unexpected token EOF (column 5)`,
		},
		{
			name: "rule data expression does not compile", old: "data: {id: after.id}", new: "data: {id: after.id +}",
			line: 35, col: 20, field: "connectors[0].emit[0].data.id",
			message: `expression "after.id +" does not compile: unexpected token EOF (column 10)`,
		},
		{
			name: "rule type not in the catalog", old: "        type: com.acme.order.accepted\n", new: "        type: com.acme.order.shipped\n",
			line: 33, col: 15, field: "connectors[0].emit[0].type",
			message: `type "com.acme.order.shipped" is not in the catalog: declare it there, or use one of "com.acme.order.accepted"`,
		},
		{
			name: "rule type one letter off a declared one", old: "        type: com.acme.order.accepted\n", new: "        type: com.acme.order.acepted\n",
			line: 33, col: 15, field: "connectors[0].emit[0].type",
			message: `type "com.acme.order.acepted" is not in the catalog (did you mean "com.acme.order.accepted"?): declare it there, or use one of "com.acme.order.accepted"`,
		},
		{
			name: "unresolved reference reported once", old: "      path: /hooks/orders\n", new: "      path: /hooks/orders\n      require_tls: true\n      tls: ${file:missing/tls}\n",
			line: 26, col: 12, field: "connectors[0].config.tls",
			message: "cannot read ${file:missing/tls}: open $DIR/missing/tls: no such file or directory; check the path (relative paths start from $DIR) and its permissions",
		},
		{
			name: "catalog schema does not compile", old: "schema: {type: object}", new: "schema: {type: 7}",
			line: 19, col: 13, field: "catalog[0].schema",
			message: `schema does not compile: it breaks the JSON Schema metaschema: /type: got number, want array; /type: value must be one of 'array', 'boolean', 'integer', 'null', 'number', 'object', 'string'`,
		},
		{
			name: "catalog schema missing", old: "    schema: {type: object}\n", new: "",
			line: 17, col: 5, field: "catalog[0].schema",
			message: `schema is missing: write the JSON Schema of the data inline under schema, or name its file in schema_file`,
		},
		{
			name: "catalog entry without version", old: "    version: \"1.0\"\n", new: "",
			line: 17, col: 5, field: "catalog[0].version",
			message: `required field "version" is missing`,
		},
		{
			name: "rule without name", old: "      - name: accepted\n        type:", new: "      - type:",
			line: 32, col: 9, field: "connectors[0].emit[0].name",
			message: `required field "name" is missing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, tt.new)
			cfg, err := parse(t, doc)
			if err == nil {
				t.Fatalf("Parse succeeded (%d connectors), want a problem", len(cfg.Connectors))
			}
			ps := problems(t, err)
			want := config.Problem{File: "", Line: tt.line, Column: tt.col, Field: tt.field, Message: tt.message}
			for _, p := range ps {
				p.Message = strings.ReplaceAll(p.Message, filepath.Dir(p.File), "$DIR")
				p.File = ""
				if p == want {
					if len(ps) != 1 {
						t.Errorf("got %d problems, want only this one:\n%v", len(ps), err)
					}
					return
				}
			}
			t.Errorf("problem not reported:\nwant %s\ngot:\n%v", want, err)
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	doc := validYAML
	doc = edit(t, doc, "  address: 127.0.0.1:8080", "  adress: 127.0.0.1:8080")
	doc = edit(t, doc, "read_timeout: 5s", "read_timeout: soon")
	doc = edit(t, doc, "      batch: 50", "      batch: lots")
	doc = edit(t, doc, "  - name: billing\n    type: webhook", "  - name: legacy_orders\n    type: webhok")
	doc = edit(t, doc, "secret: s3cret", "secret: ${TRIBUTARY_TEST_UNSET}")
	_, err := parse(t, doc)
	ps := problems(t, err)
	want := []string{
		"7:3: http.adress: unknown key",
		"8:17: http.read_timeout: \"soon\" is not a duration",
		"25:15: connectors[0].config.secret: environment variable \"TRIBUTARY_TEST_UNSET\" is not set",
		"26:14: connectors[0].config.batch: \"lots\" is not an integer",
		"37:11: connectors[1].name: connector name \"legacy_orders\" is already used",
		"38:11: connectors[1].type: unknown connector type \"webhok\"",
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, p := range ps {
		p.File = ""
		if !strings.HasPrefix(p.String(), want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, p.String(), want[i])
		}
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) || !strings.HasSuffix(strings.SplitN(lines[0], ":", 2)[0], "tributary.yaml") {
		t.Errorf("Error() = %q, want one line per problem starting with the file name", err.Error())
	}
}

func TestRuleTypesCheckedWhileCatalogBroken(t *testing.T) {
	doc := edit(t, validYAML, "    schema: {type: object}\n", "    schema_file: schemas/missing.json\n")
	doc = edit(t, doc, "      - {name: billed, type: com.acme.order.accepted}", "      - {name: billed, type: com.acme.order.acceptd}")
	_, err := parse(t, doc)
	ps := problems(t, err)
	want := []string{
		"19:18: catalog[0].schema_file: read schema file: open ",
		`41:30: connectors[1].emit[0].type: type "com.acme.order.acceptd" is not in the catalog (did you mean "com.acme.order.accepted"?)`,
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, p := range ps {
		p.File = ""
		if !strings.HasPrefix(p.String(), want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, p.String(), want[i])
		}
	}
}

func TestEventTypeSuggestions(t *testing.T) {
	tests := []struct {
		name, typ, suggestion string
	}{
		{name: "missing letter", typ: "com.acme.order.acepted", suggestion: "com.acme.order.accepted"},
		{name: "swapped letters", typ: "com.acme.order.acceptde", suggestion: "com.acme.order.accepted"},
		{name: "typo in a middle part", typ: "com.acme.ordr.accepted", suggestion: "com.acme.order.accepted"},
		{name: "another fact of the same prefix", typ: "com.acme.order.shipped", suggestion: ""},
		{name: "another domain", typ: "com.acme.invoice.issued", suggestion: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, "      - {name: billed, type: com.acme.order.accepted}", "      - {name: billed, type: "+tt.typ+"}")
			_, err := parse(t, doc)
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ps), err)
			}
			hint := ""
			if tt.suggestion != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", tt.suggestion)
			}
			want := fmt.Sprintf("type %q is not in the catalog%s: declare it there", tt.typ, hint)
			if !strings.HasPrefix(ps[0].Message, want) {
				t.Errorf("message = %q, want prefix %q", ps[0].Message, want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	doc := "connectors:\n  - name: a\n    type: webhook\n    config: {path: /x, secret: y}\n"
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Version != 1 || cfg.StateDir != filepath.Join(cfg.Dir, ".tributary") {
		t.Errorf("version, state dir = %d, %q", cfg.Version, cfg.StateDir)
	}
	if cfg.Log != (config.LogConfig{Level: "info", Format: "text"}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.Admin.Address != config.DefaultAdminAddress || cfg.HTTP.Address != config.DefaultHTTPAddress || cfg.HTTP.ReadTimeout != 10*time.Second || cfg.HTTP.TLS.Enabled() {
		t.Errorf("admin, http = %+v, %+v", cfg.Admin, cfg.HTTP)
	}
	if cfg.Shutdown.Timeout != 30*time.Second {
		t.Errorf("shutdown = %+v", cfg.Shutdown)
	}
	s := cfg.Stream
	if s.Type != "embedded" || s.Topics != (config.TopicsConfig{Mode: "per_type", Name: "tributary.events"}) || s.DeadLetterTopic != "tributary.deadletter" {
		t.Errorf("stream = %+v", s)
	}
	if s.Config.Values["fsync"] != true {
		t.Errorf("stream config = %+v", s.Config.Values)
	}
	c := cfg.Connectors[0]
	if c.Retry != (config.RetryConfig{Initial: time.Second, Max: time.Minute}) || c.MaxInFlight != 10000 || c.Disabled {
		t.Errorf("connector = %+v", c)
	}
	v := c.Config.Values
	if v["batch"] != 100 || v["interval"] != "5s" || v["mode"] != "push" || v["verify"] != true {
		t.Errorf("connector values = %#v", v)
	}
	for _, absent := range []string{"tls", "tables", "ratio", "headers"} {
		if _, ok := v[absent]; ok {
			t.Errorf("value %q = %#v, want absent", absent, v[absent])
		}
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Message != `connector "a" emits nothing: add emit rules, or set disabled: true` || cfg.Warnings[0].Line != 2 {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}

func TestEmptyDocument(t *testing.T) {
	for _, doc := range []string{"", "# nothing yet\n", "{}\n"} {
		cfg, err := parse(t, doc)
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		if len(cfg.Connectors) != 0 || cfg.Stream.Type != "embedded" {
			t.Errorf("Parse(%q) = %+v", doc, cfg)
		}
	}
}

func TestNotAMapping(t *testing.T) {
	_, err := parse(t, "- a\n- b\n")
	ps := problems(t, err)
	if len(ps) != 1 || ps[0].Line != 1 || ps[0].Column != 1 || !strings.HasPrefix(ps[0].Message, "expected a mapping with keys such as") {
		t.Errorf("problems = %v", err)
	}
}

func TestNestedDefaultsAndTypes(t *testing.T) {
	doc := edit(t, validYAML, "      batch: 50\n", `      batch: 0x10
      ratio: 0.25
      headers: {X-Team: payments, X-Count: 3}
      tls: {cert_file: c.pem}
      extra: {a: [1, true, null, x], b: 2.5}
`)
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	v := cfg.Connectors[0].Config.Values
	if v["batch"] != 16 || v["ratio"] != 0.25 {
		t.Errorf("batch, ratio = %#v, %#v", v["batch"], v["ratio"])
	}
	h := v["headers"].(map[string]any)
	if h["X-Team"] != "payments" || h["X-Count"] != "3" {
		t.Errorf("headers = %#v", h)
	}
	if tls := v["tls"].(map[string]any); tls["cert_file"] != "c.pem" || len(tls) != 1 {
		t.Errorf("tls = %#v", tls)
	}
	extra := v["extra"].(map[string]any)
	a := extra["a"].([]any)
	if a[0] != 1 || a[1] != true || a[2] != nil || a[3] != "x" || extra["b"] != 2.5 {
		t.Errorf("extra = %#v", extra)
	}
}

func TestDeprecatedFieldWarns(t *testing.T) {
	doc := edit(t, validYAML, "      batch: 50\n", "      batch: 50\n      legacy_opt: on\n")
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := config.Problem{File: cfg.File, Line: 27, Column: 7, Field: "connectors[0].config.legacy_opt", Message: `"legacy_opt" is deprecated: use mode instead`}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0] != want {
		t.Errorf("warnings = %v, want [%v]", cfg.Warnings, want)
	}
}

func TestDisabledConnectorOfUnknownType(t *testing.T) {
	doc := edit(t, validYAML, "  - name: billing\n    type: webhook", "  - name: billing\n    disabled: true\n    type: sftp_poll")
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Message, `unknown connector type "sftp_poll" in a disabled connector`) {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}

func TestMergeKeys(t *testing.T) {
	doc := `connectors:
  - &base
    name: a
    type: webhook
    config: &cfg {path: /a, secret: s, batch: 7}
    emit: [{name: r, type: com.acme.test}]
  - <<: *base
    name: b
    config:
      <<: *cfg
      path: /b
`
	cfg, err := parse(t, doc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	b := cfg.Connectors[1]
	if b.Name != "b" || b.Type != "webhook" || b.Config.Values["path"] != "/b" || b.Config.Values["batch"] != 7 || len(b.Emit) != 1 {
		t.Errorf("merged connector = %+v", b)
	}
}

func TestAliasBomb(t *testing.T) {
	doc := `a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
connectors:
  - name: x
    type: webhook
    config: {path: /x, secret: s, extra: [*g, *g, *g, *g]}
`
	_, err := parse(t, doc)
	if err == nil || !strings.Contains(err.Error(), "nests or repeats too deeply") {
		t.Fatalf("Parse = %v, want the expansion limit", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, testRegistry())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.File != path || cfg.Dir != dir || cfg.StateDir != filepath.Join(dir, "state") {
		t.Errorf("file, dir, state = %q, %q, %q", cfg.File, cfg.Dir, cfg.StateDir)
	}
	_, err = config.Load(filepath.Join(dir, "missing.yaml"), testRegistry())
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the file", err)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    config.Problem
		want string
	}{
		{"full", config.Problem{File: "a.yaml", Line: 3, Column: 5, Field: "x.y", Message: "bad"}, "a.yaml:3:5: x.y: bad"},
		{"no column", config.Problem{File: "a.yaml", Line: 3, Message: "bad"}, "a.yaml:3: bad"},
		{"no position", config.Problem{File: "a.yaml", Message: "bad"}, "a.yaml: bad"},
		{"nothing", config.Problem{Message: "bad"}, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("KEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := edit(t, validYAML, "      batch: 50\n", "      batch: 50\n      extra: {token: \"${file:key.pem}\", plain: p}\n")
	cfg, err := config.Parse(filepath.Join(dir, "t.yaml"), []byte(doc), testRegistry())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := cfg.Redacted()
	v := r.Connectors[0].Config.Values
	if v["secret"] != config.Redaction || v["extra"].(map[string]any)["token"] != config.Redaction || v["extra"].(map[string]any)["plain"] != "p" || v["path"] != "/hooks/orders" {
		t.Errorf("redacted values = %#v", v)
	}
	if r.Connectors[1].Config.Values["secret"] != config.Redaction {
		t.Errorf("second connector = %#v", r.Connectors[1].Config.Values)
	}
	if cfg.Connectors[0].Config.Values["secret"] != "s3cret" || cfg.Connectors[0].Config.Values["extra"].(map[string]any)["token"] != "KEY" {
		t.Errorf("Redacted changed the original: %#v", cfg.Connectors[0].Config.Values)
	}
}

func TestNewSourceAndStream(t *testing.T) {
	reg := testRegistry()
	cfg, err := parse(t, validYAML)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := cfg.Connectors[0].NewSource(reg); err != nil {
		t.Errorf("NewSource: %v", err)
	}
	if _, err := cfg.Stream.NewStream(reg); err != nil {
		t.Errorf("NewStream: %v", err)
	}
	bad := cfg.Connectors[0]
	bad.Type = "nope"
	if _, err := bad.NewSource(reg); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("NewSource(unknown type) = %v", err)
	}
}

func TestMergeChainStaysLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("x:\n  a0: &a0 {k: 1}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("stream: {config: {<<: *a39, fsync: true}}\n")
	_, err := parse(t, b.String())
	ps := problems(t, err)
	if len(ps) != 2 || ps[0].Field != "x" || ps[1].Field != "stream.config.k" {
		t.Errorf("problems = %v", err)
	}
}
