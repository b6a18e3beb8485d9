package plugin

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/tributary/tributary/core"
)

// ProtocolVersion is the newest version of the plugin protocol this
// package speaks. Version 2 carries changes on the gRPC transport as typed
// binary values (pluginpb.Batch) instead of JSON text; over JSON Lines the
// two versions are the same, so this package speaks both there.
const ProtocolVersion = 2

// Versions returns the protocol versions spoken on transport, newest first:
// 2 over gRPC, 2 and 1 over JSON Lines.
func Versions(transport string) []int {
	if transport == TransportJSONL {
		return []int{ProtocolVersion, 1}
	}
	return []int{ProtocolVersion}
}

// Message types. The sidecar sends hello, configure, open, credit, ack,
// produce and close; the plugin sends hello, configured, opened, changes,
// heartbeat, produced, closed and error. PROTOCOL.md says when each is sent.
const (
	TypeHello      = "hello"
	TypeConfigure  = "configure"
	TypeConfigured = "configured"
	TypeOpen       = "open"
	TypeOpened     = "opened"
	TypeChanges    = "changes"
	TypeCredit     = "credit"
	TypeAck        = "ack"
	TypeHeartbeat  = "heartbeat"
	TypeProduce    = "produce"
	TypeProduced   = "produced"
	TypeClose      = "close"
	TypeClosed     = "closed"
	TypeError      = "error"
)

// CapabilityProduce is announced in the plugin's hello when it answers
// produce messages: the test hook that makes n new changes appear, used by
// the conformance kit.
const CapabilityProduce = "produce"

// Environment variables the sidecar sets for a plugin process.
const (
	// EnvCookie holds CookieValue; a program started without it was not
	// started by a sidecar.
	EnvCookie = "TRIBUTARY_PLUGIN"
	// CookieValue is EnvCookie's value.
	CookieValue = "source-v1"
	// EnvTransport names the transport the sidecar expects: "grpc" or
	// "jsonl".
	EnvTransport = "TRIBUTARY_PLUGIN_TRANSPORT"
)

// Transports.
const (
	TransportGRPC  = "grpc"
	TransportJSONL = "jsonl"
)

// Message is one protocol message. Type says which fields matter; the
// others are empty. The JSON form is one line of the JSON Lines transport.
type Message struct {
	Type string `json:"type"`

	// Protocols (sidecar hello) lists the versions the sidecar speaks.
	Protocols []int `json:"protocols,omitempty"`
	// Protocol (plugin hello) is the version the plugin chose.
	Protocol int `json:"protocol,omitempty"`
	// Capabilities (plugin hello) lists optional features, such as
	// CapabilityProduce.
	Capabilities []string `json:"capabilities,omitempty"`

	// Name (configure, open) is the connector instance's name.
	Name string `json:"name,omitempty"`
	// Config (configure) is the connector's `config:` block from YAML.
	Config any `json:"config,omitempty"`
	// Problems (configured) lists what is wrong with Config; none means
	// it was accepted.
	Problems []Problem `json:"problems,omitempty"`

	// Position (open, ack) is where to resume after, or what is durable.
	Position *core.Position `json:"position,omitempty"`
	// StateDir (open) is a directory private to the connector instance.
	StateDir string `json:"state_dir,omitempty"`
	// Credits (open) is how many changes the plugin may send before the
	// sidecar returns credits.
	Credits int `json:"credits,omitempty"`
	// HeartbeatMS (open) is how often, in milliseconds, the plugin sends
	// something, a heartbeat when it has nothing else to send.
	HeartbeatMS int `json:"heartbeat_ms,omitempty"`

	// Changes (changes) are read changes in source order.
	Changes []Change `json:"changes,omitempty"`
	// N (credit, produce, produced) is a count: credits returned, changes
	// to produce, changes produced.
	N int `json:"n,omitempty"`

	// Role (hello) is the plugin's role: RoleSource (or empty) or
	// RoleSink. The sidecar names the role it expects; the plugin
	// answers with its own.
	Role string `json:"role,omitempty"`
	// Deliveries (write) are the events a sink plugin delivers, in
	// stream order; N is the write's id.
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// Results (results) are the outcomes of the write N, one per
	// delivery, in order.
	Results []Result `json:"results,omitempty"`
	// Mode (target) is the test hook asked of a sink plugin's target:
	// TargetReceived, TargetFail, TargetRefuse or TargetRecover.
	Mode string `json:"mode,omitempty"`
	// IDs (target) are the event ids the hook concerns, or (the answer
	// to TargetReceived) those the target took, in the order it took
	// them.
	IDs []string `json:"ids,omitempty"`

	// Error (error, opened, closed, produced) says what failed.
	Error string `json:"error,omitempty"`
	// Fatal (error, opened) marks an error that retrying cannot fix.
	Fatal bool `json:"fatal,omitempty"`
}

// Change is a core.Change on the wire. Values inside Key, Before, After,
// Payload and Meta travel as JSON: numbers arrive as json.Number, times as
// RFC 3339 strings and bytes as base64 strings. Raw travels as base64.
type Change struct {
	core.Change
	Raw []byte `json:"raw,omitempty"`
}

// Problem is one configuration problem: a core.FieldError on the wire.
type Problem struct {
	// Path is the field's dotted path inside the connector's config block,
	// such as "url" or "tables[2].name"; empty when it concerns the whole.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// Conn carries messages between the sidecar and a plugin. Send is called
// from one goroutine at a time, and so is Recv; the two may run
// concurrently.
type Conn interface {
	Send(m *Message) error
	Recv() (*Message, error)
}

// Producer is an optional capability of a source served as a plugin: the
// test hook behind the produce message. Produce makes n new changes appear
// in the system the source reads, and returns once they are readable.
type Producer interface {
	Produce(ctx context.Context, n int) error
}

// Problems converts a Configure error into problems, one per
// *core.FieldError (or other error) joined in it.
func Problems(err error) []Problem {
	var out []Problem
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if errors.As(e, &fe) {
			out = append(out, Problem{Path: fe.Path, Message: fe.Err.Error()})
			continue
		}
		out = append(out, Problem{Message: e.Error()})
	}
	return out
}

// FieldErrors converts problems back into joined *core.FieldError values.
func FieldErrors(ps []Problem) error {
	var errs []error
	for _, p := range ps {
		errs = append(errs, &core.FieldError{Path: p.Path, Err: errors.New(p.Message)})
	}
	return errors.Join(errs...)
}

// ToWire wraps changes for sending.
func ToWire(chs []core.Change) []Change {
	out := make([]Change, len(chs))
	for i := range chs {
		out[i] = Change{Change: chs[i], Raw: chs[i].Raw}
	}
	return out
}

// FromWire unwraps received changes.
func FromWire(chs []Change) []core.Change {
	out := make([]core.Change, len(chs))
	for i := range chs {
		out[i] = chs[i].Change
		out[i].Raw = chs[i].Raw
	}
	return out
}

// configValues turns a decoded JSON config into the Go values core.Config
// holds: json.Number becomes int64 or float64.
func configValues(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return int(n)
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = configValues(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = configValues(e)
		}
		return x
	}
	return v
}

// ConfigValues returns the config of a configure message as the values of
// a core.Config: a mapping, with JSON numbers turned into int or float64.
func ConfigValues(m *Message) (map[string]any, error) {
	if m.Config == nil {
		return map[string]any{}, nil
	}
	vals, ok := configValues(m.Config).(map[string]any)
	if !ok {
		return nil, errors.New("configure: config is not a mapping")
	}
	return vals, nil
}
