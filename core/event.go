package core

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents specification version Tributary emits.
const SpecVersion = "1.0"

// Event is a canonical domain event: a CloudEvents 1.0 event plus the
// extensions partitionkey and distributed tracing (traceparent and
// tracestate).
type Event struct {
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	SpecVersion     string          `json:"specversion"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	// PartitionKey carries the business key, so that every event of one
	// order (or customer, or invoice) lands on one partition, in order.
	PartitionKey string `json:"partitionkey,omitempty"`
	// TraceParent is a W3C trace context, when the change carried one.
	TraceParent string `json:"traceparent,omitempty"`
	// TraceState is the W3C tracestate that goes with TraceParent: the
	// vendors' trace entries, when the change's trace context had any.
	TraceState string `json:"tracestate,omitempty"`
}

// eventNamespace roots the name-based UUIDs of event ids.
var eventNamespace = uuid.MustParse("6f1c8a2e-8d0b-5a57-9f3e-7b1e0c4d2a91")

// EventID derives the id of the event that rule emits for the change at pos
// (its Identity) of connector. The same inputs always give the same id, so a change
// delivered twice yields events with equal ids and consumers can drop
// duplicates. The id is a version 5 (name-based) UUID.
func EventID(connector string, pos Position, rule string) string {
	// The name hashed is namespace, connector, 0, version, 0, position, 0,
	// rule; a stack buffer holds it unless it is unusually long.
	var stack [256]byte
	buf := append(stack[:0], eventNamespace[:]...)
	buf = append(buf, connector...)
	buf = append(buf, 0)
	buf = strconv.AppendUint(buf, uint64(pos.Version), 10)
	buf = append(buf, 0)
	buf = append(buf, pos.Identity()...)
	buf = append(buf, 0)
	buf = append(buf, rule...)
	sum := sha1.Sum(buf)
	sum[6] = (sum[6] & 0x0f) | 0x50 // version 5
	sum[8] = (sum[8] & 0x3f) | 0x80 // RFC 4122 variant
	// The canonical form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, as
	// uuid.UUID.String writes it, in one allocation.
	const hexDigits = "0123456789abcdef"
	var out [36]byte
	j := 0
	for i, c := range sum[:16] {
		switch i {
		case 4, 6, 8, 10:
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}

// Validate checks the attributes CloudEvents 1.0 requires.
func (e *Event) Validate() error {
	var errs []error
	if e.ID == "" {
		errs = append(errs, errors.New("id is empty"))
	}
	if e.Source == "" {
		errs = append(errs, errors.New("source is empty"))
	}
	if e.SpecVersion != SpecVersion {
		errs = append(errs, fmt.Errorf("specversion is %q, want %q", e.SpecVersion, SpecVersion))
	}
	if e.Type == "" {
		errs = append(errs, errors.New("type is empty"))
	}
	return errors.Join(errs...)
}

// Header names of the CloudEvents Kafka protocol binding, binary mode. The
// watermill message metadata of an event uses the same names, so a stream
// maps metadata to record headers one to one.
const (
	HeaderID              = "ce_id"
	HeaderSource          = "ce_source"
	HeaderSpecVersion     = "ce_specversion"
	HeaderType            = "ce_type"
	HeaderSubject         = "ce_subject"
	HeaderTime            = "ce_time"
	HeaderDataSchema      = "ce_dataschema"
	HeaderPartitionKey    = "ce_partitionkey"
	HeaderTraceParent     = "ce_traceparent"
	HeaderTraceState      = "ce_tracestate"
	HeaderContentType     = "content-type"
	headerExtensionPrefix = "ce_"
)

// MetadataKey is the metadata entry a stream uses as the record key (the
// Kafka message key). It is the partition key of the event.
const MetadataKey = HeaderPartitionKey

// MetadataPosition is the metadata entry a stream sets on each message it
// delivers to a subscriber: where the message lies in the stream, as
// "topic/partition/offset" (partition 0 on a stream whose topics have one
// partition). It is never stored with the message.
const MetadataPosition = "tributary_position"

// StreamPosition returns the MetadataPosition value of the message at
// offset of partition of topic.
func StreamPosition(topic string, partition int32, offset int64) string {
	b := make([]byte, 0, len(topic)+24)
	b = append(b, topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}

// ToMessage converts e to a watermill message in CloudEvents binary mode:
// attributes in metadata under their ce_ header names, data as the payload,
// the event id as the message UUID (a stream writes it as the ce_id header;
// EventFromMessage reads it back from either).
func (e *Event) ToMessage() *message.Message {
	m := message.NewMessage(e.ID, message.Payload(e.Data))
	// The id travels as the message UUID, not as a ce_id entry: streams
	// write it as the ce_id header. Keeping the usual attributes to eight
	// entries keeps the map in a single group, which halves its cost.
	md := make(message.Metadata, 8)
	e.EachAttribute(func(k, v string, t time.Time) {
		if k == HeaderTime {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		md[k] = v
	})
	m.Metadata = md
	return m
}

// EachAttribute calls yield with each metadata entry ToMessage writes, in
// a fixed order, so that a stream encoding events itself writes exactly
// what their messages would carry. The time's entry comes with an empty
// value and the time in t, for the caller to format (in UTC, RFC 3339
// with nanoseconds) into its own buffer; t is zero for the others.
func (e *Event) EachAttribute(yield func(key, value string, t time.Time)) {
	yield(HeaderSource, e.Source, time.Time{})
	yield(HeaderSpecVersion, e.SpecVersion, time.Time{})
	yield(HeaderType, e.Type, time.Time{})
	if e.Subject != "" {
		yield(HeaderSubject, e.Subject, time.Time{})
	}
	if !e.Time.IsZero() {
		yield(HeaderTime, "", e.Time)
	}
	if e.DataSchema != "" {
		yield(HeaderDataSchema, e.DataSchema, time.Time{})
	}
	if e.PartitionKey != "" {
		yield(HeaderPartitionKey, e.PartitionKey, time.Time{})
	}
	if e.TraceParent != "" {
		yield(HeaderTraceParent, e.TraceParent, time.Time{})
	}
	if e.TraceState != "" {
		yield(HeaderTraceState, e.TraceState, time.Time{})
	}
	if e.DataContentType != "" {
		yield(HeaderContentType, e.DataContentType, time.Time{})
	}
}

// AttributeCount returns how many entries EachAttribute yields.
func (e *Event) AttributeCount() int {
	n := 3
	for _, s := range [...]string{e.Subject, e.DataSchema, e.PartitionKey, e.TraceParent, e.TraceState, e.DataContentType} {
		if s != "" {
			n++
		}
	}
	if !e.Time.IsZero() {
		n++
	}
	return n
}

// EventFromMessage reads an event back from a message written by ToMessage
// (or any CloudEvents binary-mode record whose headers became metadata).
func EventFromMessage(m *message.Message) (*Event, error) {
	md := m.Metadata
	e := &Event{
		ID:              md.Get(HeaderID),
		Source:          md.Get(HeaderSource),
		SpecVersion:     md.Get(HeaderSpecVersion),
		Type:            md.Get(HeaderType),
		Subject:         md.Get(HeaderSubject),
		DataSchema:      md.Get(HeaderDataSchema),
		DataContentType: md.Get(HeaderContentType),
		PartitionKey:    md.Get(HeaderPartitionKey),
		TraceParent:     md.Get(HeaderTraceParent),
		TraceState:      md.Get(HeaderTraceState),
		Data:            json.RawMessage(m.Payload),
	}
	if e.ID == "" {
		e.ID = m.UUID
	}
	if t := md.Get(HeaderTime); t != "" {
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return nil, fmt.Errorf("event %s: header %s: %w", e.ID, HeaderTime, err)
		}
		e.Time = ts
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("message %s is not a CloudEvent: %w", m.UUID, err)
	}
	return e, nil
}

// MarshalStructured returns e in CloudEvents structured JSON form. Data that
// is JSON is embedded as a value; other data is carried as data_base64.
func (e *Event) MarshalStructured() ([]byte, error) {
	type alias Event
	out := struct {
		*alias
		Data       json.RawMessage `json:"data,omitempty"`
		DataBase64 []byte          `json:"data_base64,omitempty"`
	}{alias: (*alias)(e)}
	if len(e.Data) > 0 {
		if json.Valid(e.Data) && (e.DataContentType == "" || strings.Contains(e.DataContentType, "json")) {
			out.Data = e.Data
		} else {
			out.DataBase64 = e.Data
		}
	}
	return json.Marshal(out)
}
