package core

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Op is the kind of change an adapter observed.
type Op string

// The operations a Change may carry. They follow Debezium's vocabulary,
// spelled out.
const (
	OpCreate   Op = "create"   // a record appeared
	OpUpdate   Op = "update"   // a record changed
	OpDelete   Op = "delete"   // a record disappeared
	OpRead     Op = "read"     // a record read by a snapshot
	OpTruncate Op = "truncate" // a whole table was emptied
	OpMessage  Op = "message"  // a pushed message, such as a webhook delivery
)

// Valid reports whether o is one of the defined operations.
func (o Op) Valid() bool {
	switch o {
	case OpCreate, OpUpdate, OpDelete, OpRead, OpTruncate, OpMessage:
		return true
	}
	return false
}

// Position is an opaque, versioned checkpoint of a source: an LSN, a GTID
// set, a poll cursor, a delivery id. Only the source that produced it can
// interpret Data; Version names the format of Data so that a newer source can
// still read a checkpoint written by an older one.
//
// A Position also identifies its change within the connector: two different
// changes of one connector never carry equal identities, and a change read
// again after a restart carries the same identity as before. Event ids are
// derived from it. The identity is ID when set, else Data.
type Position struct {
	Version uint32 `json:"v"`
	Data    []byte `json:"d"`
	// ID, when set, is the change's identity, for a source whose Data also
	// carries resume state that can differ between two reads of the same
	// change (a snapshot reading several tables at once records how far
	// each got). It is not part of checkpoints: only event ids use it.
	ID []byte `json:"-"`
}

// Identity returns what event ids derive from: ID when set, else Data.
func (p Position) Identity() []byte {
	if len(p.ID) > 0 {
		return p.ID
	}
	return p.Data
}

// IsZero reports whether p is the empty position: no checkpoint.
func (p Position) IsZero() bool { return len(p.Data) == 0 }

// String returns a short printable form, for logs and status.
func (p Position) String() string {
	if p.IsZero() {
		return "none"
	}
	if isPrintable(p.Data) {
		return fmt.Sprintf("v%d:%s", p.Version, p.Data)
	}
	return fmt.Sprintf("v%d:%s", p.Version, base64.RawStdEncoding.EncodeToString(p.Data))
}

func isPrintable(b []byte) bool {
	if len(b) > 200 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// SourceInfo is where a change came from, in the source system's own terms.
type SourceInfo struct {
	// System names the technology, such as "postgres" or "webhook".
	System string `json:"system,omitempty"`
	// Schema and Table locate a database change.
	Schema string `json:"schema,omitempty"`
	Table  string `json:"table,omitempty"`
	// Endpoint is the URL path or API endpoint of a polled or pushed change.
	Endpoint string `json:"endpoint,omitempty"`
	// CommitTime is when the source system committed the change, if known.
	CommitTime time.Time `json:"commit_time,omitzero"`
	// TxID identifies the source transaction, if any.
	TxID string `json:"tx_id,omitempty"`
}

// Change is one change an adapter observed, in the source system's own
// vocabulary. Rules turn it into zero or more events.
//
// Values inside Key, Before, After and Payload are JSON-like: nil, bool,
// string, json.Number (exact numbers), int64, float64, time.Time, []byte,
// []any and map[string]any.
//
// A record that is absent (Before of a create, After of a delete, the Key
// of a change without one) is a nil map, and it is encoded as JSON null
// wherever a change or its data is written: rule data, dead-letter
// records, the plugin protocol. An empty map is a record present with no
// fields, encoded as {}.
//
// A Change is read-only once a source returns it, maps and slices
// included: sources may share them between changes (the poll adapter gives
// every change of a run one Meta), and mappers may read one change from
// several goroutines.
type Change struct {
	Op     Op             `json:"op"`
	Key    map[string]any `json:"key"`
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	// Payload is a pushed message body (a parsed webhook delivery), when the
	// change is not a record.
	Payload any `json:"payload,omitempty"`
	// Meta carries mechanism details rules may read: HTTP headers, query and
	// path parameters, file names, poll run times.
	Meta   map[string]any `json:"meta,omitempty"`
	Source SourceInfo     `json:"source"`
	// Position is the checkpoint that resumes after this change.
	Position Position `json:"position"`
	// Raw is the change as received, when the adapter keeps it (a webhook
	// body, a line of a file). It travels to the dead-letter stream with a
	// failed change.
	Raw []byte `json:"-"`
	// Invalid, when not empty, says why the source could not read what it
	// received as a record (a line of a file that does not parse). Such a
	// change carries what was read (Raw, Meta) but no record, and yields no
	// event: the rules engine sends it to the dead-letter stream with this
	// reason without applying any rule, and so should a custom mapper.
	Invalid string `json:"-"`
	// PayloadPruned says Payload holds only the parts of the body the
	// connector's rules read (see PayloadPruner); Raw is the whole JSON
	// body, and MarshalRaw and FullPayload decode it again.
	PayloadPruned bool `json:"-"`
}

// FullPayload returns Payload, decoded again from Raw when PayloadPruned,
// for a mapper or a record that needs the whole body.
func (c *Change) FullPayload() (any, error) {
	if !c.PayloadPruned {
		return c.Payload, nil
	}
	d := json.NewDecoder(bytes.NewReader(c.Raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode the raw body of a pruned payload: %w", err)
	}
	return v, nil
}

// MarshalRaw returns the change as JSON for the dead-letter stream. Raw, when
// present, is embedded as text when it is valid JSON and as base64 otherwise;
// Invalid, when set, is the "invalid" field.
func (c *Change) MarshalRaw() ([]byte, error) {
	type alias Change
	out := struct {
		*alias
		Invalid string          `json:"invalid,omitempty"`
		Raw     json.RawMessage `json:"raw,omitempty"`
		Raw64   []byte          `json:"raw_base64,omitempty"`
	}{alias: (*alias)(c), Invalid: c.Invalid}
	if c.PayloadPruned {
		full := *c
		p, err := c.FullPayload()
		if err != nil {
			return nil, err
		}
		full.Payload, full.PayloadPruned = p, false
		out.alias = (*alias)(&full)
	}
	if len(c.Raw) > 0 {
		if json.Valid(c.Raw) {
			out.Raw = c.Raw
		} else {
			out.Raw64 = c.Raw
		}
	}
	return json.Marshal(out)
}
