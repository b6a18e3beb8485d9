package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tributary/tributary/core"
)

// The roles of a plugin, in hello.
const (
	RoleSource = "source"
	RoleSink   = "sink"
)

// EnvRole names the role the sidecar starts a plugin for: "source" (the
// default when unset) or "sink".
const EnvRole = "TRIBUTARY_PLUGIN_ROLE"

// Message types of the sink role. The sidecar sends write, cancel and
// target; the plugin sends results and answers target with target.
const (
	TypeWrite   = "write"
	TypeResults = "results"
	TypeCancel  = "cancel"
	TypeTarget  = "target"
)

// CapabilityTarget is announced in a sink plugin's hello when it answers
// target messages: the test hooks of the sink conformance kit.
const CapabilityTarget = "target"

// The modes of a target message.
const (
	// TargetReceived asks for the ids of the events the target took, in
	// the order it took them.
	TargetReceived = "received"
	// TargetFail makes the target fail the given events transiently.
	TargetFail = "fail"
	// TargetRefuse makes the target refuse the given events for good.
	TargetRefuse = "refuse"
	// TargetRecover makes the target take every event again.
	TargetRecover = "recover"
)

// The statuses of a Result on the wire.
const (
	StatusDelivered = "delivered"
	StatusRetry     = "retry"
	StatusFailed    = "failed"
)

// Delivery is a core.Delivery on the wire.
type Delivery struct {
	// Event is the event in CloudEvents structured JSON.
	Event json.RawMessage `json:"event"`
	// Data is the sink's mapped value (its map), absent when none.
	Data    any  `json:"data,omitempty"`
	Attempt int  `json:"attempt,omitempty"`
	Replay  bool `json:"replay,omitempty"`
	// Position is where the event lies in the stream,
	// "topic/partition/offset", absent when the stream does not say.
	Position string `json:"position,omitempty"`
}

// Result is a core.Result on the wire.
type Result struct {
	// Status is StatusDelivered, StatusRetry or StatusFailed.
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// RetryAfterMS, when positive, is how long the target asked to wait.
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	Response     string `json:"response,omitempty"`
	// Gone marks an error that says the target is gone for good
	// (core.ErrSinkGone): the sidecar stops the sink.
	Gone bool `json:"gone,omitempty"`
}

// SinkTarget is an optional capability of a sink served as a plugin: the
// test hooks behind the target message, with which `tributary plugin
// test` runs the sink conformance kit against the plugin.
type SinkTarget interface {
	// Received returns the ids of the events the target took, in the
	// order it took them.
	Received(ctx context.Context) ([]string, error)
	// Stage makes the target fail (TargetFail) or refuse
	// (TargetRefuse) the events with ids, or take every event again
	// (TargetRecover).
	Stage(ctx context.Context, mode string, ids []string) error
}

// ToWireDeliveries encodes deliveries for a write message.
func ToWireDeliveries(ds []core.Delivery) ([]Delivery, error) {
	out := make([]Delivery, len(ds))
	for i, d := range ds {
		ev, err := d.Event.MarshalStructured()
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", d.Event.ID, err)
		}
		out[i] = Delivery{Event: ev, Data: d.Data, Attempt: d.Attempt, Replay: d.Replay, Position: d.Position}
	}
	return out, nil
}

// FromWireDeliveries decodes the deliveries of a write message.
func FromWireDeliveries(ds []Delivery) ([]core.Delivery, error) {
	out := make([]core.Delivery, len(ds))
	for i, d := range ds {
		var ev struct {
			core.Event
			DataBase64 []byte `json:"data_base64"`
		}
		if err := unmarshalJSON(d.Event, &ev); err != nil {
			return nil, fmt.Errorf("decode the event of delivery %d: %w", i, err)
		}
		e := ev.Event
		if len(ev.DataBase64) > 0 {
			e.Data = ev.DataBase64
		}
		out[i] = core.Delivery{Event: &e, Data: d.Data, Attempt: d.Attempt, Replay: d.Replay, Position: d.Position}
	}
	return out, nil
}

// ToWireResults encodes results for a results message.
func ToWireResults(rs []core.Result) []Result {
	out := make([]Result, len(rs))
	for i, r := range rs {
		w := Result{Status: r.Status.String(), Response: r.Response, RetryAfterMS: r.RetryAfter.Milliseconds()}
		if r.Err != nil {
			w.Error = r.Err.Error()
			w.Gone = errors.Is(r.Err, core.ErrSinkGone)
		}
		out[i] = w
	}
	return out
}

// FromWireResults decodes the results of a results message. An unknown
// status is an error.
func FromWireResults(rs []Result) ([]core.Result, error) {
	out := make([]core.Result, len(rs))
	for i, w := range rs {
		r := core.Result{Response: w.Response, RetryAfter: time.Duration(w.RetryAfterMS) * time.Millisecond}
		switch w.Status {
		case StatusDelivered:
			r.Status = core.StatusDelivered
		case StatusRetry:
			r.Status = core.StatusRetry
		case StatusFailed:
			r.Status = core.StatusFailed
		default:
			return nil, fmt.Errorf("result %d has status %q, not one of delivered, retry, failed", i, w.Status)
		}
		switch {
		case w.Gone:
			r.Err = fmt.Errorf("%s: %w", w.Error, core.ErrSinkGone)
		case w.Error != "":
			r.Err = errors.New(w.Error)
		}
		out[i] = r
	}
	return out, nil
}
