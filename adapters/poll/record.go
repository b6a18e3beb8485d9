package poll

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
)

// Mode is how a Source detects changes.
type Mode string

// The change-detection modes.
const (
	// ModeCursor reads records changed at or after a watermark.
	ModeCursor Mode = "cursor"
	// ModeSnapshot reads the whole set and diffs it against a local index.
	ModeSnapshot Mode = "snapshot"
	// ModeEach emits every record; the fetcher names positions.
	ModeEach Mode = "each"
)

// CursorKind is the type of a cursor-mode watermark.
type CursorKind string

// The cursor kinds.
const (
	CursorTime   CursorKind = "timestamp" // time.Time, or RFC 3339 text
	CursorInt    CursorKind = "integer"   // an increasing integer
	CursorString CursorKind = "string"    // text ordered bytewise; no look-back
)

// Record is one record a Fetcher read.
type Record struct {
	// Key identifies the record (its primary key). Required in the cursor
	// and snapshot modes.
	Key map[string]any
	// Data is the record's content; it becomes the change's After.
	Data map[string]any
	// Cursor is the record's watermark value in cursor mode: time.Time (or
	// RFC 3339 text) for CursorTime, an integer for CursorInt, text for
	// CursorString.
	Cursor any
	// Op overrides the change's operation. The default is OpUpdate in
	// cursor mode (an upsert: polling cannot tell a new record from a
	// changed one), OpCreate in each mode, and the diff's verdict in
	// snapshot mode (where Op is ignored).
	Op core.Op
	// Meta is merged into the change's Meta.
	Meta map[string]any
	// Source overrides the Source's default SourceInfo fields that are set.
	Source core.SourceInfo
	// Raw is the record as read, when the fetcher keeps it; it becomes the
	// change's Raw, which travels to the dead-letter stream.
	Raw []byte
	// Invalid, when set, says why the fetcher could not read the record (a
	// line that does not parse); it becomes the change's Invalid, and the
	// rules dead-letter the change.
	Invalid string
	// ID is the record's position in ModeEach: unique within the
	// connector and the same when the record is read again. Ignored in the
	// other modes.
	ID string
	// Done, in ModeEach, runs once this record and every record before it
	// are acknowledged. It must be idempotent: after a crash between
	// acknowledgement and Done, the record is read and acknowledged again.
	Done func(ctx context.Context) error
}

// Request is what one run asks a Fetcher for.
type Request struct {
	// Mode is the Source's mode.
	Mode Mode
	// Cursor, in cursor mode, is the inclusive lower bound of the cursor
	// values to return (time.Time, int64 or string, per the cursor kind);
	// nil means no watermark yet: return every record.
	Cursor any
	// RunTime is the scheduled time of the run (without jitter). A run
	// replayed after a crash keeps its run time.
	RunTime time.Time
	// After, in ModeEach, is the ID of the last record acknowledged before
	// the Source opened, or "".
	After string
}

// Fetcher reads the records of one run.
//
// Fetch calls emit with pages of records, in order, and returns when every
// page is emitted, when emit returns an error (return it), or when ctx is
// done (return ctx.Err() promptly). In cursor mode it returns the records
// whose cursor is at or after req.Cursor, ordered by cursor then key; in
// snapshot mode every record of the set, each key once, in any order; in
// each mode the records not processed yet. emit may block while the runtime
// catches up; a page's slice may be reused by the Fetcher after emit
// returns. An error wrapping core.ErrFatal stops the connector; other errors
// end the run, are returned by Read and the runtime reopens after a backoff.
// Fetch is never called concurrently with itself.
type Fetcher interface {
	Fetch(ctx context.Context, req Request, emit func([]Record) error) error
}

// FetcherFunc adapts a function to a Fetcher.
type FetcherFunc func(ctx context.Context, req Request, emit func([]Record) error) error

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context, req Request, emit func([]Record) error) error {
	return f(ctx, req, emit)
}

var _ Fetcher = FetcherFunc(nil)

// cval is a normalised cursor value: i for time (Unix nanoseconds) and
// integer kinds, s for strings.
type cval struct {
	i int64
	s string
}

func (a cval) less(b cval, kind CursorKind) bool {
	if kind == CursorString {
		return a.s < b.s
	}
	return a.i < b.i
}

// normCursor converts a record's cursor value to a cval.
func normCursor(kind CursorKind, v any) (cval, error) {
	switch kind {
	case CursorTime:
		switch x := v.(type) {
		case time.Time:
			return cval{i: x.UnixNano()}, nil
		case string:
			t, err := parseTime(x)
			if err != nil {
				return cval{}, err
			}
			return cval{i: t.UnixNano()}, nil
		case []byte:
			t, err := parseTime(string(x))
			if err != nil {
				return cval{}, err
			}
			return cval{i: t.UnixNano()}, nil
		}
	case CursorInt:
		switch x := v.(type) {
		case int64:
			return cval{i: x}, nil
		case int:
			return cval{i: int64(x)}, nil
		case int32:
			return cval{i: int64(x)}, nil
		case uint64:
			if x <= math.MaxInt64 {
				return cval{i: int64(x)}, nil
			}
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return cval{i: int64(x)}, nil
			}
		case json.Number:
			n, err := strconv.ParseInt(string(x), 10, 64)
			if err == nil {
				return cval{i: n}, nil
			}
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err == nil {
				return cval{i: n}, nil
			}
		case []byte:
			n, err := strconv.ParseInt(strings.TrimSpace(string(x)), 10, 64)
			if err == nil {
				return cval{i: n}, nil
			}
		}
	case CursorString:
		switch x := v.(type) {
		case string:
			return cval{s: x}, nil
		case []byte:
			return cval{s: string(x)}, nil
		case json.Number:
			return cval{s: string(x)}, nil
		}
	}
	return cval{}, fmt.Errorf("cursor value %v (%T) is not a %s", v, v, kind)
}

// timeLayouts are the text forms accepted for timestamp cursors, beyond
// RFC 3339: what databases print when they return timestamps as text.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02",
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp (use RFC 3339, such as 2024-05-01T10:00:00Z)", s)
}

// value returns the cursor as a Fetcher receives it.
func (a cval) value(kind CursorKind) any {
	switch kind {
	case CursorTime:
		return time.Unix(0, a.i).UTC()
	case CursorInt:
		return a.i
	}
	return a.s
}

// appendJSON appends the cursor's JSON form, as positions carry it.
func (a cval) appendJSON(b []byte, kind CursorKind) []byte {
	switch kind {
	case CursorTime:
		b = append(b, '"')
		b = time.Unix(0, a.i).UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case CursorInt:
		return strconv.AppendInt(b, a.i, 10)
	}
	q, _ := json.Marshal(a.s)
	return append(b, q...)
}

// minus returns the lower bound of a look-back window ending at a.
func (a cval) minus(kind CursorKind, d time.Duration, n int64) cval {
	switch kind {
	case CursorTime:
		return cval{i: a.i - int64(d)}
	case CursorInt:
		return cval{i: a.i - n}
	}
	return a
}

// canonicalKey returns the key as canonical JSON (sorted members), the form
// positions and the index carry.
func canonicalKey(key map[string]any) (string, error) {
	b, err := appendCanonicalKey(nil, key)
	return string(b), err
}

// appendCanonicalKey appends the key as canonicalKey returns it.
func appendCanonicalKey(b []byte, key map[string]any) ([]byte, error) {
	if len(key) == 0 {
		return b, fmt.Errorf("record has no key")
	}
	if len(key) == 1 {
		for k, v := range key {
			if out, ok := appendPlainKey(b, k, v); ok {
				return out, nil
			}
		}
	}
	enc, err := json.Marshal(jsonable(key))
	if err != nil {
		return b, fmt.Errorf("encode record key: %w", err)
	}
	return append(b, enc...), nil
}

// appendPlainKey is the fast path of appendCanonicalKey for the common
// single-column key whose name and value need no JSON escapes. ok is false
// when it does not apply.
func appendPlainKey(b []byte, k string, v any) (out []byte, ok bool) {
	if !isPlain(k) {
		return b, false
	}
	switch x := v.(type) {
	case int64:
		b = append(append(append(b, `{"`...), k...), `":`...)
		return append(strconv.AppendInt(b, x, 10), '}'), true
	case string:
		if isPlain(x) {
			b = append(append(append(b, `{"`...), k...), `":"`...)
			return append(append(b, x...), `"}`...), true
		}
	}
	return b, false
}

// appendKey appends the canonical key, as appendCanonicalKey does. A
// single-column key is looked up by the name of the last one rather than
// read by ranging over the map.
func (h *hasher) appendKey(b []byte, key map[string]any) ([]byte, error) {
	if len(key) == 1 {
		if v, found := key[h.keyName]; found {
			if out, ok := appendPlainKey(b, h.keyName, v); ok {
				return out, nil
			}
		}
		for k := range key {
			h.keyName = k
		}
	}
	return appendCanonicalKey(b, key)
}

// jsonable converts values encoding/json would render ambiguously
// (time.Time in its location) to their canonical forms.
func jsonable(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonable(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonable(e)
		}
		return out
	}
	return v
}

// hasher computes content hashes of records: SHA-256 over a canonical,
// type-tagged encoding with members sorted by name. One hasher is used by
// one goroutine.
type hasher struct {
	buf  []byte
	keys []string
	// order is the sorted member names of the last top-level map: the
	// records of one source usually share them. vals holds a record's
	// values in that order while it is encoded.
	order []string
	vals  []any
	// keyName is the name of the last single-column key.
	keyName string
	// lastTime is the last time appendTime formatted, lastText its text.
	lastTime time.Time
	lastText []byte
}

// appendTime appends t in UTC as RFC 3339 with nanoseconds. The last time
// formatted is kept: a record's cursor is usually one of its fields.
func (h *hasher) appendTime(b []byte, t time.Time) []byte {
	if h.lastText == nil || !t.Equal(h.lastTime) {
		h.lastTime = t
		h.lastText = t.UTC().AppendFormat(h.lastText[:0], time.RFC3339Nano)
	}
	return append(b, h.lastText...)
}

// sum returns the 16-byte content hash of data.
func (h *hasher) sum(data map[string]any) [16]byte {
	h.buf = h.appendRecord(h.buf[:0], data)
	s := sha256.Sum256(h.buf)
	var out [16]byte
	copy(out[:], s[:16])
	return out
}

// appendRecord appends the encoding of a record's data, as appendValue
// does, with the member names sorted once for records that share them.
func (h *hasher) appendRecord(b []byte, x map[string]any) []byte {
	if x == nil {
		return h.appendValue(b, x)
	}
	same := len(x) == len(h.order)
	if same {
		// The same number of members, each name found: the same names.
		h.vals = h.vals[:0]
		for _, k := range h.order {
			v, ok := x[k]
			if !ok {
				same = false
				break
			}
			h.vals = append(h.vals, v)
		}
	}
	if !same {
		h.order = h.order[:0]
		for k := range x {
			h.order = append(h.order, k)
		}
		slices.Sort(h.order)
		h.vals = h.vals[:0]
		for _, k := range h.order {
			h.vals = append(h.vals, x[k])
		}
	}
	b = append(b, '{')
	b = binary.AppendUvarint(b, uint64(len(h.order)))
	for i, k := range h.order {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = h.appendValue(b, h.vals[i])
	}
	clear(h.vals)
	return append(b, '}')
}

func (h *hasher) appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'n')
	case bool:
		if x {
			return append(b, 't')
		}
		return append(b, 'f')
	case string:
		b = append(b, 's')
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case []byte:
		b = append(b, 'b')
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case int64:
		return strconv.AppendInt(append(b, 'i'), x, 10)
	case int:
		return strconv.AppendInt(append(b, 'i'), int64(x), 10)
	case int32:
		return strconv.AppendInt(append(b, 'i'), int64(x), 10)
	case uint64:
		return strconv.AppendUint(append(b, 'i'), x, 10)
	case float64:
		return strconv.AppendFloat(append(b, 'd'), x, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(append(b, 'd'), float64(x), 'g', -1, 32)
	case json.Number:
		b = append(b, 'N')
		b = binary.AppendUvarint(b, uint64(len(x)))
		return append(b, x...)
	case time.Time:
		return h.appendTime(append(b, 'T'), x)
	case map[string]any:
		start := len(h.keys)
		for k := range x {
			h.keys = append(h.keys, k)
		}
		keys := h.keys[start:]
		slices.Sort(keys)
		b = append(b, '{')
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = binary.AppendUvarint(b, uint64(len(k)))
			b = append(b, k...)
			b = h.appendValue(b, x[k])
		}
		h.keys = h.keys[:start]
		return append(b, '}')
	case []any:
		b = append(b, '[')
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, e := range x {
			b = h.appendValue(b, e)
		}
		return append(b, ']')
	}
	enc, err := json.Marshal(v)
	if err != nil {
		enc = fmt.Append(nil, v)
	}
	b = append(b, 'j')
	b = binary.AppendUvarint(b, uint64(len(enc)))
	return append(b, enc...)
}

// hashText is the short form of a content hash positions carry.
func hashText(h [16]byte) string {
	return string(appendHashText(nil, h))
}

// appendHashText appends hashText(h).
func appendHashText(b []byte, h [16]byte) []byte {
	return base64.RawURLEncoding.AppendEncode(b, h[:12])
}

// isPlain reports whether s needs no escaping in JSON (and is encoded the
// same by encoding/json).
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
