package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tributary/tributary/core"
)

// This file encodes and decodes pluginpb.Batch, the changes of a changes
// message on the gRPC transport, by hand: no reflection and no JSON for the
// common value types, and map keys and source names interned on decoding.
// The bytes are exactly those of the generated pluginpb.Batch, so plugins
// in other languages use their protobuf library.

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

// maxDepth bounds the nesting of values, on both ends.
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
	return protowire.AppendString(b, s)
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
		b = protowire.AppendString(b, x)
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
		b = protowire.AppendString(b, string(x))
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

// maxInterned bounds a decoder's table of interned strings.
const maxInterned = 4096

// maxBoxed is the longest string or number value a decoder keeps boxed.
const maxBoxed = 32

// slots is the size of a decoder's direct-mapped caches, which answer most
// lookups without hashing the whole string.
const slots = 1024

// decoder decodes batches; it interns map keys and source names, and keeps
// short string and number values boxed, all of which repeat from change to
// change. One decoder serves one connection.
type decoder struct {
	strs   map[string]string
	recent [slots]string
	strv   map[string]any // boxed string values
	numv   map[string]any // boxed json.Number values
	boxes  [slots]box
}

type box struct {
	s      string
	number bool
	v      any
}

func slot(b []byte) int {
	n := len(b)
	return int((uint(n)*0x9e37 ^ uint(b[0])<<5 ^ uint(b[n/2])<<10 ^ uint(b[n-1])) % slots)
}

func (d *decoder) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	i := slot(b)
	if s := d.recent[i]; s == string(b) {
		return s
	}
	s, ok := d.strs[string(b)]
	if !ok {
		s = string(b)
		if len(b) <= 64 && len(d.strs) < maxInterned {
			if d.strs == nil {
				d.strs = make(map[string]string)
			}
			d.strs[s] = s
		}
	}
	d.recent[i] = s
	return s
}

// boxed returns v as a string (or json.Number) in an interface, reusing
// the one made for the same bytes before.
func (d *decoder) boxed(v []byte, number bool) any {
	if len(v) > maxBoxed || len(v) == 0 {
		if number {
			return json.Number(v)
		}
		return string(v)
	}
	i := slot(v)
	if bx := &d.boxes[i]; bx.v != nil && bx.number == number && bx.s == string(v) {
		return bx.v
	}
	cache := &d.strv
	if number {
		cache = &d.numv
	}
	x, ok := (*cache)[string(v)]
	if !ok {
		if number {
			x = json.Number(v)
		} else {
			x = string(v)
		}
		if len(*cache) < maxInterned {
			if *cache == nil {
				*cache = make(map[string]any)
			}
			(*cache)[string(v)] = x
		}
	}
	key, _ := x.(string)
	if number {
		key = string(x.(json.Number))
	}
	d.boxes[i] = box{s: key, number: number, v: x}
	return x
}

var errTruncated = errors.New("truncated or malformed protobuf")

// field reads one field's tag and value: for varint and fixed64 fields u,
// for length-delimited ones v (a sub-slice of b). It returns the number of
// bytes read, or an error.
func field(b []byte) (num protowire.Number, typ protowire.Type, u uint64, v []byte, n int, err error) {
	// Most fields have a one-byte tag and a one-byte varint or length.
	if len(b) >= 2 && b[0] >= 8 && b[0] < 0x80 && b[1] < 0x80 {
		num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch typ {
		case protowire.VarintType:
			return num, typ, uint64(b[1]), nil, 2, nil
		case protowire.BytesType:
			if l := int(b[1]); 2+l <= len(b) {
				return num, typ, 0, b[2 : 2+l], 2 + l, nil
			}
		}
	}
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, nil, 0, errTruncated
	}
	b = b[n:]
	var m int
	switch typ {
	case protowire.VarintType:
		u, m = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		u, m = protowire.ConsumeFixed64(b)
	case protowire.BytesType:
		v, m = protowire.ConsumeBytes(b)
	default:
		m = protowire.ConsumeFieldValue(num, typ, b)
	}
	if m < 0 {
		return 0, 0, 0, nil, 0, errTruncated
	}
	return num, typ, u, v, n + m, nil
}

// decodeBatch decodes an encoded pluginpb.Batch. Byte values alias b.
func (d *decoder) decodeBatch(b []byte) ([]Change, error) {
	count := 0
	for rest := b; len(rest) > 0; {
		_, _, _, _, n, err := field(rest)
		if err != nil {
			return nil, fmt.Errorf("decode changes: %w", err)
		}
		rest = rest[n:]
		count++
	}
	out := make([]Change, 0, count)
	for len(b) > 0 {
		num, typ, _, v, n, _ := field(b)
		b = b[n:]
		if num != fBatchChanges || typ != protowire.BytesType {
			continue
		}
		out = append(out, Change{})
		if err := d.change(v, &out[len(out)-1]); err != nil {
			return nil, fmt.Errorf("decode change %d: %w", len(out)-1, err)
		}
	}
	return out, nil
}

func (d *decoder) change(b []byte, c *Change) error {
	for len(b) > 0 {
		num, typ, _, v, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case fChangeOp:
			c.Op = op(v)
		case fChangeKey:
			c.Key, err = d.mapValue(v, 0)
		case fChangeBefore:
			c.Before, err = d.mapValue(v, 0)
		case fChangeAfter:
			c.After, err = d.mapValue(v, 0)
		case fChangePayload:
			c.Payload, err = d.value(v, 0)
		case fChangeMeta:
			c.Meta, err = d.mapValue(v, 0)
		case fChangeSource:
			err = d.source(v, &c.Source)
		case fChangePosition:
			err = position(v, &c.Position)
		case fChangeRaw:
			c.Raw = v[:len(v):len(v)]
		}
		if err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	if c.Position.IsZero() {
		return errors.New("change without a position")
	}
	return nil
}

func op(b []byte) core.Op {
	for _, o := range [...]core.Op{core.OpCreate, core.OpUpdate, core.OpDelete, core.OpRead, core.OpTruncate, core.OpMessage} {
		if string(o) == string(b) {
			return o
		}
	}
	return core.Op(b)
}

func position(b []byte, p *core.Position) error {
	for len(b) > 0 {
		num, typ, u, v, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == fPositionVersion && typ == protowire.VarintType:
			p.Version = uint32(u)
		case num == fPositionData && typ == protowire.BytesType:
			p.Data = v[:len(v):len(v)]
		}
	}
	return nil
}

func (d *decoder) source(b []byte, s *core.SourceInfo) error {
	for len(b) > 0 {
		num, typ, _, v, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case fSourceSystem:
			s.System = d.intern(v)
		case fSourceSchema:
			s.Schema = d.intern(v)
		case fSourceTable:
			s.Table = d.intern(v)
		case fSourceEndpoint:
			s.Endpoint = d.intern(v)
		case fSourceCommitTime:
			if s.CommitTime, err = timestamp(v); err != nil {
				return err
			}
		case fSourceTxID:
			s.TxID = string(v)
		}
	}
	return nil
}

func timestamp(b []byte) (time.Time, error) {
	var sec, ns int64
	for len(b) > 0 {
		num, typ, u, _, n, err := field(b)
		if err != nil {
			return time.Time{}, err
		}
		b = b[n:]
		switch {
		case num == fTimeSeconds && typ == protowire.VarintType:
			sec = int64(u)
		case num == fTimeNanos && typ == protowire.VarintType:
			ns = int64(int32(u))
		}
	}
	return time.Unix(sec, ns).UTC(), nil
}

func (d *decoder) mapValue(b []byte, depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	count := 0
	for rest := b; len(rest) > 0; count++ {
		_, _, _, _, n, err := field(rest)
		if err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	m := make(map[string]any, count)
	for len(b) > 0 {
		num, typ, _, e, n, _ := field(b)
		b = b[n:]
		if num != fMapFields || typ != protowire.BytesType {
			continue
		}
		var key string
		var val any
		for len(e) > 0 {
			num, typ, _, v, n, err := field(e)
			if err != nil {
				return nil, err
			}
			e = e[n:]
			if typ != protowire.BytesType {
				continue
			}
			switch num {
			case fEntryKey:
				key = d.intern(v)
			case fEntryValue:
				if val, err = d.value(v, depth+1); err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
			}
		}
		m[key] = val
	}
	return m, nil
}

func (d *decoder) value(b []byte, depth int) (any, error) {
	var out any
	for len(b) > 0 {
		num, typ, u, v, n, err := field(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		switch {
		case num == fValueNull:
			out = nil
		case num == fValueBool && typ == protowire.VarintType:
			out = u != 0
		case num == fValueInt && typ == protowire.VarintType:
			out = protowire.DecodeZigZag(u)
		case num == fValueDouble && typ == protowire.Fixed64Type:
			out = math.Float64frombits(u)
		case num == fValueString && typ == protowire.BytesType:
			out = d.boxed(v, false)
		case num == fValueBytes && typ == protowire.BytesType:
			out = v[:len(v):len(v)]
		case num == fValueTime && typ == protowire.BytesType:
			if out, err = timestamp(v); err != nil {
				return nil, err
			}
		case num == fValueNumber && typ == protowire.BytesType:
			out = d.boxed(v, true)
		case num == fValueList && typ == protowire.BytesType:
			if depth > maxDepth {
				return nil, fmt.Errorf("values nested deeper than %d", maxDepth)
			}
			list := []any{}
			for len(v) > 0 {
				lnum, ltyp, _, e, ln, err := field(v)
				if err != nil {
					return nil, err
				}
				v = v[ln:]
				if lnum != fListValues || ltyp != protowire.BytesType {
					continue
				}
				x, err := d.value(e, depth+1)
				if err != nil {
					return nil, fmt.Errorf("[%d]: %w", len(list), err)
				}
				list = append(list, x)
			}
			out = list
		case num == fValueMap && typ == protowire.BytesType:
			m, err := d.mapValue(v, depth+1)
			if err != nil {
				return nil, err
			}
			out = m
		}
	}
	return out, nil
}
