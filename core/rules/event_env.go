package rules

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
)

// EventEnv is what the expressions over one event see, with the scratch
// space their evaluation needs. The event's data is decoded once, by the
// first expression that reads event.data, and shared by every expression
// evaluated with the same EventEnv: a sink's when, its map and its own
// expression-valued keys pay for one decoding per event.
//
// An EventEnv is not safe for concurrent use: keep one per goroutine and
// Reset it for each event. Values that expressions return may share maps
// and lists with the decoded data; they stay valid after Reset, and no one
// must modify them.
type EventEnv struct {
	vars eventVars
	ev   *core.Event
	// decoded says vars.Event.Data holds the decoding of ev.Data, or
	// dataErr why it could not be decoded.
	decoded bool
	dataErr error
	vm      vm.VM
}

// eventVars is the environment expressions over an event compile against.
// Field tags are the variable names.
type eventVars struct {
	Event eventAttrs `expr:"event"`
	Sink  string     `expr:"sink"`
}

// eventAttrs is the `event` variable.
type eventAttrs struct {
	ID              string    `expr:"id"`
	Type            string    `expr:"type"`
	Source          string    `expr:"source"`
	Subject         string    `expr:"subject"`
	Time            time.Time `expr:"time"`
	Data            any       `expr:"data"`
	PartitionKey    string    `expr:"partitionkey"`
	DataSchema      string    `expr:"dataschema"`
	DataContentType string    `expr:"datacontenttype"`
}

// eventVarNames lists the variables, for messages.
const eventVarNames = "event.id, event.type, event.source, event.subject, event.time, event.data, event.partitionkey, event.dataschema, event.datacontenttype and sink"

// NewEventEnv returns an environment for expressions over ev, delivered by
// the sink named sink.
func NewEventEnv(ev *core.Event, sink string) *EventEnv {
	e := new(EventEnv)
	e.Reset(ev, sink)
	return e
}

// Reset makes e the environment of ev, delivered by the sink named sink,
// keeping its scratch space. A nil ev is an event with no attributes.
func (e *EventEnv) Reset(ev *core.Event, sink string) {
	e.ev, e.decoded, e.dataErr = ev, false, nil
	if ev == nil {
		e.vars = eventVars{Sink: sink}
		return
	}
	e.vars = eventVars{
		Event: eventAttrs{
			ID:              ev.ID,
			Type:            ev.Type,
			Source:          ev.Source,
			Subject:         ev.Subject,
			Time:            ev.Time,
			PartitionKey:    ev.PartitionKey,
			DataSchema:      ev.DataSchema,
			DataContentType: ev.DataContentType,
		},
		Sink: sink,
	}
}

// eventID returns the id of e's event, for errors.
func (e *EventEnv) eventID() string { return e.vars.Event.ID }

// loadData decodes the event's data into vars.Event.Data, once.
func (e *EventEnv) loadData() error {
	if !e.decoded {
		e.decoded = true
		if e.ev != nil {
			e.vars.Event.Data, e.dataErr = decodeEventData(e.ev)
		}
	}
	return e.dataErr
}

// decodeEventData returns the value of ev's data: the decoded JSON, numbers
// exact as json.Number, when its content type is JSON or unset; the data as
// text for another content type; nil when there is none.
func decodeEventData(ev *core.Event) (any, error) {
	if len(ev.Data) == 0 {
		return nil, nil
	}
	if ct := ev.DataContentType; ct != "" && !strings.Contains(ct, "json") {
		return string(ev.Data), nil
	}
	v, err := catalog.Normalize(json.RawMessage(ev.Data))
	if err != nil {
		return nil, fmt.Errorf("event.data cannot be read: %w", err)
	}
	return v, nil
}
