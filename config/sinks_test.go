package config_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// sinksYAML is validYAML with a sinks section; the sink cases break one
// thing of it each. The section starts at line 42.
const sinksYAML = validYAML + `sinks:
  - name: warehouse
    type: http
    events: [com.acme.order.*]
    when: event.data.id != nil
    map: {order_id: event.data.id, via: sink}
    retry: {schedule: [1s, 1m]}
    concurrency: 4
    max_batch: 10
    start: end
    config:
      url: https://wms.local/orders
      token: t0ken
  - name: audit_log
    type: audit
`

func TestSinks(t *testing.T) {
	cfg, err := parse(t, sinksYAML)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings = %v, want none", cfg.Warnings)
	}
	if len(cfg.Sinks) != 2 {
		t.Fatalf("sinks = %d, want 2", len(cfg.Sinks))
	}
	s := cfg.Sinks[0]
	if s.Name != "warehouse" || s.Type != "http" || !slices.Equal(s.Events, []string{"com.acme.order.*"}) || s.When != "event.data.id != nil" {
		t.Errorf("sink = %+v", s)
	}
	if m, _ := s.Map.(map[string]any); m["order_id"] != "event.data.id" || m["via"] != "sink" {
		t.Errorf("map = %#v", s.Map)
	}
	if !slices.Equal(s.Retry, []time.Duration{time.Second, time.Minute}) || s.Concurrency != 4 || s.MaxBatch != 10 || s.Start != config.SinkStartEnd || s.Disabled {
		t.Errorf("retry, concurrency, max_batch, start, disabled = %v, %d, %d, %q, %v", s.Retry, s.Concurrency, s.MaxBatch, s.Start, s.Disabled)
	}
	v := s.Config.Values
	if s.Config.Name != "warehouse" || v["url"] != "https://wms.local/orders" || v["method"] != "POST" || v["timeout"] != "10s" || v["token"] != "t0ken" {
		t.Errorf("config = %q %#v", s.Config.Name, v)
	}
	a := cfg.Sinks[1]
	if a.Events != nil || a.When != "" || a.Map != nil || a.Retry != nil || a.Concurrency != 0 || a.MaxBatch != 0 || a.Start != config.SinkStartBeginning || a.Disabled {
		t.Errorf("defaults of a sink that sets nothing = %+v", a)
	}
	progs, ok := cfg.Compiled.Sinks["warehouse"]
	if !ok || progs.When == nil || progs.Map == nil {
		t.Fatalf("compiled warehouse = %+v, %v", progs, ok)
	}
	ev := &core.Event{ID: "e-1", Type: "com.acme.order.accepted", Data: []byte(`{"id":"A-1"}`)}
	if v, err := progs.When.Eval(ev, "warehouse"); v != true || err != nil {
		t.Errorf("when on an event with an id = %v, %v; want true", v, err)
	}
	if v, err := progs.Map.Eval(ev, "warehouse"); err != nil || !reflect.DeepEqual(v, map[string]any{"order_id": "A-1", "via": "warehouse"}) {
		t.Errorf("map = %#v, %v", v, err)
	}
	if p := cfg.Compiled.Sinks["audit_log"]; p.When != nil || p.Map != nil {
		t.Errorf("compiled audit_log = %+v, want nothing compiled", p)
	}
	if _, err := s.NewSink(testRegistry()); err != nil {
		t.Errorf("NewSink: %v", err)
	}
	if c, err := parse(t, edit(t, sinksYAML, "schedule: [1s, 1m]", "schedule: []")); err != nil || c.Sinks[0].Retry == nil || len(c.Sinks[0].Retry) != 0 {
		t.Errorf("retry of schedule: [] = %#v (%v), want empty and not nil: no retry", c.Sinks[0].Retry, err)
	}
	bad := s
	bad.Type = "nope"
	if _, err := bad.NewSink(testRegistry()); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("NewSink(unknown type) = %v", err)
	}
}

func TestSinkProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		line     int
		col      int
		field    string
		message  string
	}{
		{
			name: "unknown sink type", old: "    type: http\n", new: "    type: htp\n",
			line: 44, col: 11, field: "sinks[0].type",
			message: `unknown sink type "htp" (did you mean "http"?); known types: audit, http`,
		},
		{
			name: "unknown key in the config block", old: "      token: t0ken", new: "      tokn: t0ken",
			line: 54, col: 7, field: "sinks[0].config.tokn",
			message: `unknown key "tokn" (did you mean "token"?); known keys: method, timeout, token, url`,
		},
		{
			name: "missing required config field", old: "      url: https://wms.local/orders\n", new: "",
			line: 52, col: 5, field: "sinks[0].config.url",
			message: `required field "url" is missing`,
		},
		{
			name: "bad enum in the config block", old: "      token: t0ken", new: "      method: PST",
			line: 54, col: 15, field: "sinks[0].config.method",
			message: `"PST" is not one of "POST", "PUT" (did you mean "POST"?)`,
		},
		{
			name: "configure error", old: "url: https://wms.local/orders", new: "url: wms.local/orders",
			line: 53, col: 12, field: "sinks[0].config.url",
			message: `"wms.local/orders" is not an http or https URL`,
		},
		{
			name: "unknown key in a sink", old: "    max_batch: 10", new: "    max_bach: 10",
			line: 50, col: 5, field: "sinks[0].max_bach",
			message: `unknown key "max_bach" (did you mean "max_batch"?); known keys: concurrency, config, disabled, events, map, max_batch, name, retry, start, subjects, type, when`,
		},
		{
			name: "missing sink type", old: "  - name: audit_log\n    type: audit\n", new: "  - name: audit_log\n",
			line: 55, col: 5, field: "sinks[1].type",
			message: `required field "type" is missing`,
		},
		{
			name: "duplicate sink name", old: "  - name: audit_log", new: "  - name: warehouse",
			line: 55, col: 11, field: "sinks[1].name",
			message: `sink name "warehouse" is already used by sinks[0] (line 43); names must be unique`,
		},
		{
			name: "invalid sink name", old: "  - name: audit_log", new: "  - name: Audit-Log",
			line: 55, col: 11, field: "sinks[1].name",
			message: `"Audit-Log" is not a valid sink name: use lowercase letters, digits and underscores, starting with a letter (such as warehouse)`,
		},
		{
			name: "bad duration in the schedule", old: "schedule: [1s, 1m]", new: "schedule: [1s, soon]",
			line: 48, col: 28, field: "sinks[0].retry.schedule[1]",
			message: `"soon" is not a duration (examples: 30s, 5m, 1h30m)`,
		},
		{
			name: "zero duration in the schedule", old: "schedule: [1s, 1m]", new: "schedule: [0s, 1m]",
			line: 48, col: 24, field: "sinks[0].retry.schedule[0]",
			message: `0s is not positive: each delay must be longer than zero, such as 5s`,
		},
		{
			name: "negative duration in the schedule", old: "schedule: [1s, 1m]", new: "schedule: [1s, -1m]",
			line: 48, col: 28, field: "sinks[0].retry.schedule[1]",
			message: `-1m is not positive: each delay must be longer than zero, such as 5s`,
		},
		{
			name: "when does not compile", old: "when: event.data.id != nil", new: "when: event.data.id !=",
			line: 46, col: 11, field: "sinks[0].when",
			message: `expression "event.data.id !=" does not compile: unexpected token EOF (column 16)`,
		},
		{
			name: "when is not a condition", old: "when: event.data.id != nil", new: "when: event.type",
			line: 46, col: 11, field: "sinks[0].when",
			message: `expression "event.type" does not compile: expected bool, but got string`,
		},
		{
			name: "when reads an unknown variable", old: "when: event.data.id != nil", new: "when: payload.id != nil",
			line: 46, col: 11, field: "sinks[0].when",
			message: `expression "payload.id != nil" does not compile: unknown name payload (column 1); expressions see event.id, event.type, event.source, event.subject, event.time, event.data, event.partitionkey, event.dataschema, event.datacontenttype and sink; a constant string needs quotes`,
		},
		{
			name: "map expression does not compile", old: "map: {order_id: event.data.id, via: sink}", new: "map: {order_id: event.data.id +, via: sink}",
			line: 47, col: 21, field: "sinks[0].map.order_id",
			message: `expression "event.data.id +" does not compile: unexpected token EOF (column 15)`,
		},
		{
			name: "map of one expression does not compile", old: "map: {order_id: event.data.id, via: sink}", new: "map: event.data[",
			line: 47, col: 10, field: "sinks[0].map",
			message: `expression "event.data[" does not compile: unexpected token EOF (column 11)`,
		},
		{
			name: "schedule not a list", old: "schedule: [1s, 1m]", new: "schedule: 1s",
			line: 48, col: 23, field: "sinks[0].retry.schedule",
			message: `expected a list of strings, such as [a, b], got "1s"`,
		},
		{
			name: "concurrency below 1", old: "concurrency: 4", new: "concurrency: 0",
			line: 49, col: 18, field: "sinks[0].concurrency",
			message: `must be at least 1, such as 16`,
		},
		{
			name: "max_batch below 1", old: "max_batch: 10", new: "max_batch: -1",
			line: 50, col: 16, field: "sinks[0].max_batch",
			message: `must be at least 1, such as 64`,
		},
		{
			name: "bad start", old: "start: end", new: "start: latest",
			line: 51, col: 12, field: "sinks[0].start",
			message: `"latest" is not one of "beginning", "end"`,
		},
		{
			name: "event type not in the catalog", old: "events: [com.acme.order.*]", new: "events: [com.acme.order.acepted]",
			line: 45, col: 14, field: "sinks[0].events[0]",
			message: `event type "com.acme.order.acepted" is not in the catalog (did you mean "com.acme.order.accepted"?): declare it there, or use one of "com.acme.order.accepted"`,
		},
		{
			name: "glob that matches no catalog type", old: "events: [com.acme.order.*]", new: "events: [com.acme.invoice.*]",
			line: 45, col: 14, field: "sinks[0].events[0]",
			message: `"com.acme.invoice.*" matches no event type in the catalog, so the sink would receive nothing: the catalog declares "com.acme.order.accepted"`,
		},
		{
			name: "malformed glob", old: "events: [com.acme.order.*]", new: `events: ["com.acme.[order"]`,
			line: 45, col: 14, field: "sinks[0].events[0]",
			message: `"com.acme.[order" is not a valid glob: * matches any characters, ? one, [abc] one of a set; close every [ and end no pattern with \`,
		},
		{
			name: "empty events list", old: "events: [com.acme.order.*]", new: "events: []",
			line: 45, col: 13, field: "sinks[0].events",
			message: `an empty list delivers nothing: leave events out for every type, or list the types, such as [com.acme.order.*]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, sinksYAML, tt.old, tt.new)
			_, err := parse(t, doc)
			if err == nil {
				t.Fatal("Parse succeeded, want a problem")
			}
			ps := problems(t, err)
			want := config.Problem{Line: tt.line, Column: tt.col, Field: tt.field, Message: tt.message}
			for _, p := range ps {
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

// TestSinkEventsWithoutCatalog: without a catalog, a sink's event types
// are compared with the types the file's rules emit; a miss is a warning,
// except for a pattern when topics are per type, which then reads no topic.
func TestSinkEventsWithoutCatalog(t *testing.T) {
	noCatalog := edit(t, sinksYAML, "catalog:\n  - type: com.acme.order.accepted\n    version: \"1.0\"\n    schema: {type: object}\n", "")
	single := edit(t, noCatalog, `topics: {mode: per_type, prefix: "acme."}`, `topics: {mode: single}`)
	sinkOnly := "sinks:\n  - name: audit_log\n    type: audit\n    events: [com.other.thing.*]\n"
	tests := []struct {
		name, doc string
		problem   string // "" means the file is valid
		warning   string // "" means no warning
	}{
		{
			name:    "a type no rule emits",
			doc:     edit(t, noCatalog, "events: [com.acme.order.*]", "events: [com.acme.order.acepted]"),
			warning: `41:14: sinks[0].events[0]: "com.acme.order.acepted" matches no event type this file's rules emit (did you mean "com.acme.order.accepted"?): they emit "com.acme.order.accepted"; only other producers on the stream can send it events`,
		},
		{
			name: "a glob matching an emitted type",
			doc:  edit(t, noCatalog, "events: [com.acme.order.*]", "events: [com.acme.*]"),
		},
		{
			name:    "a glob matching no emitted type, topics per type",
			doc:     edit(t, noCatalog, "events: [com.acme.order.*]", "events: [com.acme.invoice.*]"),
			problem: `41:14: sinks[0].events[0]: "com.acme.invoice.*" matches no event type this file's rules emit ("com.acme.order.accepted"), and with topics per type a sink reads only the topics of the types it knows: declare the types in the catalog, name them exactly in events, or set stream.topics.mode: single`,
		},
		{
			name:    "a glob matching no emitted type, one topic",
			doc:     edit(t, single, "events: [com.acme.order.*]", "events: [com.acme.invoice.*]"),
			warning: `41:14: sinks[0].events[0]: "com.acme.invoice.*" matches no event type this file's rules emit: they emit "com.acme.order.accepted"; only other producers on the stream can send it events`,
		},
		{
			name:    "no rules, a glob, topics per type",
			doc:     sinkOnly,
			problem: `4:14: sinks[0].events[0]: "com.other.thing.*" matches no event type this file knows (it has no catalog and no rule), and with topics per type a sink reads only the topics of the types it knows: declare the types in the catalog, name them exactly in events, or set stream.topics.mode: single`,
		},
		{
			name: "no rules, a type, topics per type",
			doc:  edit(t, sinkOnly, "com.other.thing.*", "com.other.thing.done"),
		},
		{
			name: "no rules, a glob, one topic",
			doc:  "stream: {topics: {mode: single}}\n" + sinkOnly,
		},
		{
			name:    "no rules, every type, topics per type",
			doc:     edit(t, sinkOnly, "    events: [com.other.thing.*]\n", ""),
			problem: `2:5: sinks[0].events: the sink takes every event type, but this file knows none (it has no catalog and no rule), and with topics per type a sink reads only the topics of the types it knows: declare the types in the catalog, list them in events, or set stream.topics.mode: single`,
		},
		{
			name:    "disabled sink of an unknown type",
			doc:     edit(t, sinksYAML, "    type: audit\n", "    type: sftp_drop\n    disabled: true\n"),
			warning: `56:11: sinks[1].type: unknown sink type "sftp_drop" in a disabled sink: its configuration is not checked`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parse(t, tt.doc)
			if tt.problem != "" {
				ps := problems(t, err)
				if len(ps) == 1 {
					ps[0].File = ""
				}
				if len(ps) != 1 || ps[0].String() != tt.problem {
					t.Errorf("problems:\n%v\nwant only:\n%s", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, w := range cfg.Warnings {
				w.File = ""
				got = append(got, w.String())
			}
			switch {
			case tt.warning == "" && len(got) != 0:
				t.Errorf("warnings = %q, want none", got)
			case tt.warning != "" && (len(got) != 1 || got[0] != tt.warning):
				t.Errorf("warnings = %q, want [%q]", got, tt.warning)
			}
		})
	}
}

func TestSinkSecretsRedacted(t *testing.T) {
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "t.yaml"), []byte(sinksYAML), testRegistry())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := cfg.Redacted()
	if v := r.Sinks[0].Config.Values; v["token"] != config.Redaction || v["url"] != "https://wms.local/orders" {
		t.Errorf("redacted sink values = %#v", v)
	}
	if cfg.Sinks[0].Config.Values["token"] != "t0ken" {
		t.Errorf("Redacted changed the original: %#v", cfg.Sinks[0].Config.Values)
	}
}

func TestSchemaDescribesSinks(t *testing.T) {
	s := compileSchema(t, testRegistry())
	if err := s.Validate(asJSON(t, sinksYAML)); err != nil {
		t.Fatalf("the valid configuration fails the schema: %v", err)
	}
	tests := []struct {
		name, old, new string
		valid          bool
	}{
		{name: "unknown sink type", old: "    type: http\n", new: "    type: htp\n"},
		{name: "unknown key in a sink's config", old: "      token: t0ken", new: "      tokn: t0ken"},
		{name: "config of another sink type", old: "    type: audit\n", new: "    type: audit\n    config: {url: x}\n"},
		{name: "missing required config key", old: "      url: https://wms.local/orders\n", new: ""},
		{name: "unknown key in a sink", old: "max_batch: 10", new: "max_bach: 10"},
		{name: "bad duration in the schedule", old: "schedule: [1s, 1m]", new: "schedule: [1s, soon]"},
		{name: "empty schedule", old: "schedule: [1s, 1m]", new: "schedule: []", valid: true},
		{name: "bad start", old: "start: end", new: "start: latest"},
		{name: "map as one expression", old: "map: {order_id: event.data.id, via: sink}", new: "map: event.data", valid: true},
		{name: "schedule by reference", old: "schedule: [1s, 1m]", new: `schedule: ["${FIRST_RETRY:-1s}", 1m]`, valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(asJSON(t, edit(t, sinksYAML, tt.old, tt.new)))
			if tt.valid && err != nil {
				t.Errorf("schema rejects a valid configuration: %v", err)
			}
			if !tt.valid && err == nil {
				t.Error("schema accepts an invalid configuration")
			}
		})
	}
}
