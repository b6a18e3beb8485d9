package plugin

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tributary/tributary/core"
)

// This file encodes pluginpb.Batch, the changes of a changes message on
// the gRPC transport, by hand: no reflection and no JSON for the common
// value types (wiredecode.go decodes it). The bytes are exactly those of
// the generated pluginpb.Batch, so plugins in other languages use their
// protobuf library.

// Field numbers of pluginpb.Batch and the messages it holds.
const (
	fBatchChanges = 1

	fChangeOp       = 1
	fChangeKey      = 2
	fChangeBefore   = 3
	fChangeAfter    = 4
	fChangePayload  = 5
	fChangeMeta     = 6
	fChangeSource   = 7
	fChangePosition = 8
	fChangeRaw      = 9

	fSourceSystem     = 1
	fSourceSchema     = 2
	fSourceTable      = 3
	fSourceEndpoint   = 4
	fSourceCommitTime = 5
	fSourceTxID       = 6

	fPositionVersion = 1
	fPositionData    = 2

	fMapFields  = 1
	fEntryKey   = 1
	fEntryValue = 2
	fListValues = 1

	fTimeSeconds = 1
	fTimeNanos   = 2

	fValueNull   = 1
	fValueBool   = 2
	fValueInt    = 3
	fValueDouble = 4
	fValueString = 5
	fValueBytes  = 6
	fValueTime   = 7
	fValueNumber = 8
	fValueList   = 9
	fValueMap    = 10
)

// maxDepth bounds the nesting of values the encoder writes, and of those
// the JSON Lines fast path reads (it leaves deeper ones to encoding/json).
const maxDepth = 100

// appendBatch appends the encoded pluginpb.Batch of chs to b.
func appendBatch(b []byte, chs []Change) ([]byte, error) {
	for i := range chs {
		var err error
		if b, err = appendChange(b, &chs[i]); err != nil {
			return nil, fmt.Errorf("encode change at %s: %w", chs[i].Position, err)
		}
	}
	return b, nil
}

// begin appends the tag of a length-delimited field and one byte reserved
// for its length, and returns where its content starts; end writes the
// length, moving the content when it needs more than one byte.
func begin(b []byte, num protowire.Number) ([]byte, int) {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	b = append(b, 0)
	return b, len(b)
}

func end(b []byte, start int) []byte {
	n := len(b) - start
	if n < 0x80 {
		b[start-1] = byte(n)
		return b
	}
	extra := protowire.SizeVarint(uint64(n)) - 1
	for range extra {
		b = append(b, 0)
	}
	copy(b[start+extra:], b[start:start+n])
	protowire.AppendVarint(b[:start-1], uint64(n))
	return b
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return appendText(b, s)
}

// appendText appends s as the value of a protobuf string, which must be
// UTF-8: each byte of s that is not becomes U+FFFD, as encoding/json
// writes it on the JSON Lines transport.
func appendText(b []byte, s string) []byte {
	if utf8.ValidString(s) {
		return protowire.AppendString(b, s)
	}
	v := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			v = utf8.AppendRune(v, utf8.RuneError)
		} else {
			v = append(v, s[i:i+size]...)
		}
		i += size
	}
	return protowire.AppendBytes(b, v)
}

func appendChange(b []byte, c *Change) ([]byte, error) {
	start := 0
	b, start = begin(b, fBatchChanges)
	b = appendString(b, fChangeOp, string(c.Op))
	var err error
	for _, f := range [...]struct {
		num protowire.Number
		m   map[string]any
	}{{fChangeKey, c.Key}, {fChangeBefore, c.Before}, {fChangeAfter, c.After}} {
		if f.m != nil {
			if b, err = appendMap(b, f.num, f.m, 0); err != nil {
				return nil, err
			}
		}
	}
	if c.Payload != nil {
		if b, err = appendValue(b, fChangePayload, c.Payload, 0); err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
	}
	if c.Meta != nil {
		if b, err = appendMap(b, fChangeMeta, c.Meta, 0); err != nil {
			return nil, err
		}
	}
	s := &c.Source
	if *s != (core.SourceInfo{}) {
		sstart := 0
		b, sstart = begin(b, fChangeSource)
		b = appendString(b, fSourceSystem, s.System)
		b = appendString(b, fSourceSchema, s.Schema)
		b = appendString(b, fSourceTable, s.Table)
		b = appendString(b, fSourceEndpoint, s.Endpoint)
		if !s.CommitTime.IsZero() {
			b = appendTime(b, fSourceCommitTime, s.CommitTime)
		}
		b = appendString(b, fSourceTxID, s.TxID)
		b = end(b, sstart)
	}
	pstart := 0
	b, pstart = begin(b, fChangePosition)
	if c.Position.Version != 0 {
		b = protowire.AppendTag(b, fPositionVersion, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(c.Position.Version))
	}
	if len(c.Position.Data) > 0 {
		b = protowire.AppendTag(b, fPositionData, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Position.Data)
	}
	b = end(b, pstart)
	if len(c.Raw) > 0 {
		b = protowire.AppendTag(b, fChangeRaw, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Raw)
	}
	return end(b, start), nil
}

func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	start := 0
	b, start = begin(b, num)
	if s := t.Unix(); s != 0 {
		b = protowire.AppendTag(b, fTimeSeconds, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(s))
	}
	if ns := t.Nanosecond(); ns != 0 {
		b = protowire.AppendTag(b, fTimeNanos, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ns))
	}
	return end(b, start)
}

func appendMap(b []byte, num protowire.Number, m map[string]any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	start := 0
	b, start = begin(b, num)
	for k, v := range m {
		estart := 0
		b, estart = begin(b, fMapFields)
		b = appendString(b, fEntryKey, k)
		var err error
		if b, err = appendValue(b, fEntryValue, v, depth+1); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		b = end(b, estart)
	}
	return end(b, start), nil
}

func appendInt(b []byte, i int64) []byte {
	b = protowire.AppendTag(b, fValueInt, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeZigZag(i))
}

func appendValue(b []byte, num protowire.Number, v any, depth int) ([]byte, error) {
	start := 0
	b, start = begin(b, num)
	switch x := v.(type) {
	case nil:
		b = protowire.AppendTag(b, fValueNull, protowire.VarintType)
		b = append(b, 1)
	case string:
		b = protowire.AppendTag(b, fValueString, protowire.BytesType)
		b = appendText(b, x)
	case int64:
		b = appendInt(b, x)
	case int:
		b = appendInt(b, int64(x))
	case int32:
		b = appendInt(b, int64(x))
	case int16:
		b = appendInt(b, int64(x))
	case int8:
		b = appendInt(b, int64(x))
	case uint8:
		b = appendInt(b, int64(x))
	case uint16:
		b = appendInt(b, int64(x))
	case uint32:
		b = appendInt(b, int64(x))
	case uint:
		b = appendUint(b, uint64(x))
	case uint64:
		b = appendUint(b, x)
	case float64:
		b = protowire.AppendTag(b, fValueDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(x))
	case float32:
		b = protowire.AppendTag(b, fValueDouble, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, math.Float64bits(float64(x)))
	case bool:
		b = protowire.AppendTag(b, fValueBool, protowire.VarintType)
		b = protowire.AppendVarint(b, protowire.EncodeBool(x))
	case json.Number:
		b = protowire.AppendTag(b, fValueNumber, protowire.BytesType)
		b = appendText(b, string(x))
	case []byte:
		b = protowire.AppendTag(b, fValueBytes, protowire.BytesType)
		b = protowire.AppendBytes(b, x)
	case time.Time:
		b = appendTime(b, fValueTime, x)
	case map[string]any:
		var err error
		if b, err = appendMap(b, fValueMap, x, depth+1); err != nil {
			return nil, err
		}
	case []any:
		if depth > maxDepth {
			return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
		}
		lstart := 0
		b, lstart = begin(b, fValueList)
		for i, e := range x {
			var err error
			if b, err = appendValue(b, fListValues, e, depth+1); err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		b = end(b, lstart)
	default:
		// Other types (structs, typed slices and maps, decimal types)
		// travel as their JSON form, as they would to a JSON consumer.
		g, err := generic(v)
		if err != nil {
			return nil, err
		}
		b = b[:start-1-protowire.SizeTag(num)]
		return appendValue(b, num, g, depth)
	}
	return end(b, start), nil
}

func appendUint(b []byte, u uint64) []byte {
	if u <= math.MaxInt64 {
		return appendInt(b, int64(u))
	}
	b = protowire.AppendTag(b, fValueNumber, protowire.BytesType)
	return protowire.AppendString(b, fmt.Sprint(u))
}

// generic returns v as the value its JSON form decodes to, with numbers as
// json.Number. A typed nil pointer is nil.
func generic(v any) (any, error) {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
		return nil, nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	var g any
	if err := unmarshalJSON(j, &g); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return g, nil
}
