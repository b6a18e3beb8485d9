package runtime

import (
	"encoding/json"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// DeadLetterType is the CloudEvents type of dead-letter records.
const DeadLetterType = "dev.tributary.deadletter"

// DeadLetter is the data of a dead-letter record: why an output failed, the
// rule, the data as built, and the raw change, so that nothing is lost and an
// operator can replay it. A sink's dead letter names the sink instead of a
// connector and rule, and carries the event as it was on the stream
// (structured CloudEvent) and the target's last response.
type DeadLetter struct {
	Connector string          `json:"connector,omitempty"`
	Rule      string          `json:"rule,omitempty"`
	Sink      string          `json:"sink,omitempty"`
	Reason    string          `json:"reason"`
	Error     string          `json:"error"`
	Response  string          `json:"response,omitempty"`
	EventType string          `json:"event_type,omitempty"`
	Data      any             `json:"data,omitempty"`
	Change    json.RawMessage `json:"change,omitempty"`
	Event     json.RawMessage `json:"event,omitempty"`
}

// Metadata keys carried by dead-letter messages besides the CloudEvents
// headers.
const (
	HeaderDLConnector = "tributary_connector"
	HeaderDLRule      = "tributary_rule"
	HeaderDLReason    = "tributary_reason"
)

func deadLetterMessage(connector string, ch *core.Change, o Output) (*message.Message, error) {
	raw, err := ch.MarshalRaw()
	if err != nil {
		return nil, err
	}
	reason := o.Reason
	if reason == "" {
		reason = "rule_error"
	}
	dl := DeadLetter{Connector: connector, Rule: o.Rule, Reason: reason, Data: o.Data, Change: raw}
	if o.Err != nil {
		dl.Error = o.Err.Error()
	}
	if o.Event != nil {
		dl.EventType = o.Event.Type
	}
	data, err := json.Marshal(dl)
	if err != nil {
		// Data may hold values JSON cannot encode; keep everything else.
		dl.Data = nil
		if data, err = json.Marshal(dl); err != nil {
			return nil, err
		}
	}
	ev := core.Event{
		ID:              core.EventID(connector, ch.Position, o.Rule+"#deadletter"),
		Source:          "/tributary/" + connector,
		SpecVersion:     core.SpecVersion,
		Type:            DeadLetterType,
		Subject:         o.Rule,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
		PartitionKey:    connector,
	}
	m := ev.ToMessage()
	m.Metadata[HeaderDLConnector] = connector
	m.Metadata[HeaderDLRule] = o.Rule
	m.Metadata[HeaderDLReason] = reason
	return m, nil
}
