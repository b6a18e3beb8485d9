package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tributary/tributary/core"
)

// This file decodes pluginpb.Batch by hand, interning map keys and source
// names, into exactly what proto.Unmarshal into the generated types would
// mean, as plugin.proto reads: the same batches are refused (truncated
// fields, field numbers out of range, strings that are not UTF-8, messages
// nested deeper than protowire.DefaultRecursionLimit), and a message field
// given twice merges as protobuf merges it, as if the second one's bytes
// followed the first's. FuzzGRPCBatch checks the two agree.

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

var (
	errTruncated = errors.New("truncated or malformed protobuf")
	errUTF8      = errors.New("string field holds invalid UTF-8")
	errNesting   = fmt.Errorf("messages nested deeper than %d", protowire.DefaultRecursionLimit)
)

// nest checks a message at depth, the batch being at 1, against the
// recursion limit of proto.Unmarshal.
func nest(depth int) error {
	if depth > protowire.DefaultRecursionLimit {
		return errNesting
	}
	return nil
}

// text returns a string field's bytes, which protobuf requires be UTF-8.
func text(v []byte) ([]byte, error) {
	if !utf8.Valid(v) {
		return nil, errUTF8
	}
	return v, nil
}

// internText interns the string field v. Only a string not found in the
// cache needs checking: what the cache holds was checked when it came in.
func (d *decoder) internText(v []byte) (string, error) {
	if len(v) > 0 {
		if s := d.recent[slot(v)]; s == string(v) {
			return s, nil
		}
	}
	if _, err := text(v); err != nil {
		return "", err
	}
	return d.intern(v), nil
}

// boxedText boxes the string field v as boxed does, checking it as
// internText does.
func (d *decoder) boxedText(v []byte, number bool) (any, error) {
	if len(v) > 0 && len(v) <= maxBoxed {
		if bx := &d.boxes[slot(v)]; bx.v != nil && bx.number == number && bx.s == string(v) {
			return bx.v, nil
		}
	}
	if _, err := text(v); err != nil {
		return nil, err
	}
	return d.boxed(v, number), nil
}

// bytesField returns a bytes field: empty is absent, nil.
func bytesField(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return v[:len(v):len(v)]
}

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
	if n < 0 || num > protowire.MaxValidNumber {
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
		if err := d.change(v, &out[len(out)-1], 2); err != nil {
			return nil, fmt.Errorf("decode change %d: %w", len(out)-1, err)
		}
	}
	return out, nil
}

// pbTime is a pluginpb.Timestamp being decoded. Two of them merge field
// by field, so the fields stay apart until the change is read.
type pbTime struct {
	set     bool
	sec, ns int64
}

func (t *pbTime) merge(b []byte, depth int) error {
	if err := nest(depth); err != nil {
		return err
	}
	t.set = true
	for len(b) > 0 {
		num, typ, u, _, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		switch {
		case num == fTimeSeconds && typ == protowire.VarintType:
			t.sec = int64(u)
		case num == fTimeNanos && typ == protowire.VarintType:
			t.ns = int64(int32(u))
		}
	}
	return nil
}

func (t *pbTime) time() time.Time { return time.Unix(t.sec, t.ns).UTC() }

func (d *decoder) change(b []byte, c *Change, depth int) error {
	var payload value
	var commit pbTime
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
			if v, err = text(v); err == nil {
				c.Op = op(v)
			}
		case fChangeKey:
			c.Key, err = d.mapValue(c.Key, v, depth+1)
		case fChangeBefore:
			c.Before, err = d.mapValue(c.Before, v, depth+1)
		case fChangeAfter:
			c.After, err = d.mapValue(c.After, v, depth+1)
		case fChangePayload:
			err = d.value(&payload, v, depth+1)
		case fChangeMeta:
			c.Meta, err = d.mapValue(c.Meta, v, depth+1)
		case fChangeSource:
			err = d.source(v, &c.Source, &commit, depth+1)
		case fChangePosition:
			err = position(v, &c.Position, depth+1)
		case fChangeRaw:
			c.Raw = bytesField(v)
		}
		if err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
	}
	c.Payload = payload.get()
	if commit.set {
		c.Source.CommitTime = commit.time()
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

func position(b []byte, p *core.Position, depth int) error {
	if err := nest(depth); err != nil {
		return err
	}
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
			p.Data = bytesField(v)
		}
	}
	return nil
}

func (d *decoder) source(b []byte, s *core.SourceInfo, commit *pbTime, depth int) error {
	if err := nest(depth); err != nil {
		return err
	}
	for len(b) > 0 {
		num, typ, _, v, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		if typ != protowire.BytesType {
			continue
		}
		if num == fSourceCommitTime {
			if err := commit.merge(v, depth+1); err != nil {
				return err
			}
			continue
		}
		var dst *string
		switch num {
		case fSourceSystem:
			dst = &s.System
		case fSourceSchema:
			dst = &s.Schema
		case fSourceTable:
			dst = &s.Table
		case fSourceEndpoint:
			dst = &s.Endpoint
		case fSourceTxID:
			dst = &s.TxID
		default:
			continue
		}
		if num == fSourceTxID {
			if _, err = text(v); err == nil {
				*dst = string(v) // one per transaction: not worth interning
			}
		} else {
			*dst, err = d.internText(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// mapValue merges the pluginpb.Map in b into m, making m when nil.
func (d *decoder) mapValue(m map[string]any, b []byte, depth int) (map[string]any, error) {
	if err := nest(depth); err != nil {
		return nil, err
	}
	count := 0
	for rest := b; len(rest) > 0; count++ {
		_, _, _, _, n, err := field(rest)
		if err != nil {
			return nil, err
		}
		rest = rest[n:]
	}
	if m == nil {
		m = make(map[string]any, count)
	}
	for len(b) > 0 {
		num, typ, _, e, n, _ := field(b)
		b = b[n:]
		if num != fMapFields || typ != protowire.BytesType {
			continue
		}
		if err := nest(depth + 1); err != nil {
			return nil, err
		}
		var key string
		var val value
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
				if key, err = d.internText(v); err != nil {
					return nil, err
				}
			case fEntryValue:
				if err := d.value(&val, v, depth+2); err != nil {
					return nil, fmt.Errorf("%s: %w", key, err)
				}
			}
		}
		m[key] = val.get()
	}
	return m, nil
}

// value is a pluginpb.Value being decoded. Setting one kind replaces the
// one before, except that a list, map or time given again merges into the
// one before, as a message field given twice does.
type value struct {
	kind protowire.Number // the field of the kind set last; 0 for none
	v    any
	t    pbTime
}

func (x *value) get() any {
	if x.kind == fValueTime {
		return x.t.time()
	}
	return x.v
}

// value merges the pluginpb.Value in b into x.
func (d *decoder) value(x *value, b []byte, depth int) error {
	if err := nest(depth); err != nil {
		return err
	}
	for len(b) > 0 {
		num, typ, u, v, n, err := field(b)
		if err != nil {
			return err
		}
		b = b[n:]
		prev := x.kind
		switch {
		case num == fValueNull && typ == protowire.VarintType:
			x.v = nil
		case num == fValueBool && typ == protowire.VarintType:
			x.v = u != 0
		case num == fValueInt && typ == protowire.VarintType:
			x.v = protowire.DecodeZigZag(u)
		case num == fValueDouble && typ == protowire.Fixed64Type:
			x.v = math.Float64frombits(u)
		case (num == fValueString || num == fValueNumber) && typ == protowire.BytesType:
			if x.v, err = d.boxedText(v, num == fValueNumber); err != nil {
				return err
			}
		case num == fValueBytes && typ == protowire.BytesType:
			x.v = v[:len(v):len(v)]
		case num == fValueTime && typ == protowire.BytesType:
			if prev != fValueTime {
				x.t = pbTime{}
			}
			x.v = nil
			if err := x.t.merge(v, depth+1); err != nil {
				return err
			}
		case num == fValueList && typ == protowire.BytesType:
			list, _ := x.v.([]any)
			if prev != fValueList {
				list = []any{}
			}
			if x.v, err = d.list(list, v, depth+1); err != nil {
				return err
			}
		case num == fValueMap && typ == protowire.BytesType:
			m, _ := x.v.(map[string]any)
			if prev != fValueMap {
				m = nil
			}
			if x.v, err = d.mapValue(m, v, depth+1); err != nil {
				return err
			}
		default:
			continue // not a kind: an unknown field
		}
		x.kind = num
	}
	return nil
}

// list appends the values of the pluginpb.List in b to list.
func (d *decoder) list(list []any, b []byte, depth int) ([]any, error) {
	if err := nest(depth); err != nil {
		return nil, err
	}
	for len(b) > 0 {
		num, typ, _, e, n, err := field(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		if num != fListValues || typ != protowire.BytesType {
			continue
		}
		var x value
		if err := d.value(&x, e, depth+1); err != nil {
			return nil, fmt.Errorf("[%d]: %w", len(list), err)
		}
		list = append(list, x.get())
	}
	return list, nil
}
