package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// Why a sink dead-letters an event: the reason of its DeadLetter and the
// "reason" label of tributary_sink_dead_lettered_total.
const (
	// SinkReasonFailed: the target asked to retry the event on every
	// attempt of the retry schedule.
	SinkReasonFailed = "delivery_failed"
	// SinkReasonRefused: the target refused the event for good
	// (core.StatusFailed).
	SinkReasonRefused = "delivery_refused"
	// SinkReasonMap: the sink's map failed on the event.
	SinkReasonMap = "map_error"
	// SinkReasonFilter: the sink's filter (its `when`) failed on the
	// event.
	SinkReasonFilter = "filter_error"
	// SinkReasonInvalid: the stream's message is not a CloudEvent.
	SinkReasonInvalid = "invalid_event"
)

// HeaderDLSink is the metadata key naming the sink on a sink's dead-letter
// message.
const HeaderDLSink = "tributary_sink"

// rawMessage is how a dead letter carries a message that is not a
// CloudEvent.
type rawMessage struct {
	UUID     string            `json:"uuid"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Payload  []byte            `json:"payload,omitempty"`
}

// sinkDeadLetterMessage builds the dead-letter record of it, which the sink
// could not deliver for reason, cause and the target's response. Its id
// derives from the sink and the event's id, so that an event dead-lettered
// twice (after a crash before the commit) gives records with one id.
func sinkDeadLetterMessage(sink string, it *sinkItem, reason string, cause error, response string) (*message.Message, error) {
	dl := DeadLetter{Sink: sink, Reason: reason, Response: response, Data: it.data}
	if cause != nil {
		dl.Error = cause.Error()
	}
	id := it.msg.UUID
	if it.ev != nil {
		id = it.ev.ID
		dl.EventType = it.ev.Type
		ev, err := it.ev.MarshalStructured()
		if err != nil {
			return nil, fmt.Errorf("encode event %s: %w", id, err)
		}
		dl.Event = ev
	} else {
		raw, err := json.Marshal(rawMessage{UUID: it.msg.UUID, Metadata: it.msg.Metadata, Payload: it.msg.Payload})
		if err != nil {
			return nil, fmt.Errorf("encode message %s: %w", id, err)
		}
		dl.Event = raw
	}
	data, err := json.Marshal(dl)
	if err != nil {
		// Data may hold values JSON cannot encode; keep everything else.
		dl.Data = nil
		if data, err = json.Marshal(dl); err != nil {
			return nil, errors.Join(fmt.Errorf("encode dead letter of event %s", id), err)
		}
	}
	ev := core.Event{
		ID:              core.EventID("sink:"+sink, core.Position{Data: []byte(id)}, "#deadletter"),
		Source:          "/tributary/sinks/" + sink,
		SpecVersion:     core.SpecVersion,
		Type:            DeadLetterType,
		Subject:         id,
		Time:            time.Now().UTC(),
		DataContentType: "application/json",
		Data:            data,
		PartitionKey:    sink,
	}
	m := ev.ToMessage()
	m.Metadata[HeaderDLSink] = sink
	m.Metadata[HeaderDLReason] = reason
	return m, nil
}
