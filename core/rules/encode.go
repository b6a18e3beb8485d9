package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tributary/tributary/core"
)

// appendJSON appends the JSON encoding of v, a value produced by
// catalog.Normalize, to b. Map keys are sorted, as encoding/json sorts them,
// so equal data always encodes to equal bytes. json.Number is written as is,
// keeping every digit. Unlike encoding/json, '<', '>' and '&' are not
// escaped: the data is not embedded in HTML.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case string:
		return core.AppendJSONString(b, x, false), nil
	case json.Number:
		if !validNumber(string(x)) {
			return b, fmt.Errorf("%q is not a JSON number", string(x))
		}
		return append(b, x...), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float64:
		return appendFloat(b, x)
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		// The entries of a row fit the array on the stack: no allocation,
		// and each value is read in the one pass over the map.
		var arr [32]entry
		es := arr[:0]
		for k, e := range x {
			es = append(es, entry{k, e})
		}
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		b = append(b, '{')
		for i, e := range es {
			if i > 0 {
				b = append(b, ',')
			}
			b = core.AppendJSONString(b, e.k, false)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, e.v); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	}
	return b, fmt.Errorf("cannot encode %T as JSON", v)
}

// entry is a map's key and value, while a map is encoded.
type entry struct {
	k string
	v any
}

// appendFloat writes f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("%v cannot be written as JSON", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONValue appends the JSON of v as appendJSON does, in the same
// pass checking what jsonValue checks: ok is false, and b is to be
// dropped, when v is not already what catalog.Normalize makes of it (a
// time, bytes, another integer type, NaN, a nil map, nesting deeper than
// jsonValue allows). A value read whole from a change (data: after) is so
// checked and encoded in one walk rather than two. An error is
// appendJSON's (a json.Number that is not a number): v may then still
// not be a JSON value; jsonValue decides.
func appendJSONValue(b []byte, v any, depth int) (_ []byte, ok bool, err error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true, nil
	case string:
		return core.AppendJSONString(b, x, false), true, nil
	case bool:
		return strconv.AppendBool(b, x), true, nil
	case json.Number:
		if !validNumber(string(x)) {
			return b, true, fmt.Errorf("%q is not a JSON number", string(x))
		}
		return append(b, x...), true, nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), true, nil
	case int64:
		return strconv.AppendInt(b, x, 10), true, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return b, false, nil
		}
		b, err = appendFloat(b, x)
		return b, true, err
	case []any:
		if x == nil || depth >= 100 {
			return b, false, nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok, err = appendJSONValue(b, e, depth+1); !ok || err != nil {
				return b, ok, err
			}
		}
		return append(b, ']'), true, nil
	case map[string]any:
		if x == nil || depth >= 100 {
			return b, false, nil
		}
		var arr [32]entry
		es := arr[:0]
		for k, e := range x {
			es = append(es, entry{k, e})
		}
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.k, b.k) })
		b = append(b, '{')
		for i, e := range es {
			if i > 0 {
				b = append(b, ',')
			}
			b = core.AppendJSONString(b, e.k, false)
			b = append(b, ':')
			if b, ok, err = appendJSONValue(b, e.v, depth+1); !ok || err != nil {
				return b, ok, err
			}
		}
		return append(b, '}'), true, nil
	}
	return b, false, nil
}

// keyOrder remembers the keys of the last object a state encoded whole
// (a row read whole: data: after), sorted, each with its JSON and colon,
// so that the next row of the table, with the same keys, is encoded in
// that order with a lookup per key: no walk over the map, no sort, no key
// escaped again. A row with other keys is encoded as appendJSONValue
// encodes it, and its keys remembered instead.
type keyOrder struct {
	keys []string
	// json holds `"key":` of every key, in order; ends[i] is where the
	// i-th ends.
	json []byte
	ends []int
}

// appendJSON appends v's JSON as appendJSONValue does.
func (o *keyOrder) appendJSON(b []byte, v any) ([]byte, bool, error) {
	m, isMap := v.(map[string]any)
	if !isMap || m == nil || len(m) > 32 {
		return appendJSONValue(b, v, 0)
	}
	var arr [32]any
	vals := arr[:0]
	if len(m) == len(o.keys) {
		for _, k := range o.keys {
			e, ok := m[k]
			if !ok {
				break
			}
			vals = append(vals, e)
		}
	}
	if len(vals) != len(m) || len(m) == 0 {
		// Other keys (the same count, and every key remembered found,
		// is the same keys): remember these.
		o.keys, o.json, o.ends = o.keys[:0], o.json[:0], o.ends[:0]
		for k := range m {
			o.keys = append(o.keys, k)
		}
		slices.Sort(o.keys)
		vals = vals[:0]
		for _, k := range o.keys {
			o.json = append(core.AppendJSONString(o.json, k, false), ':')
			o.ends = append(o.ends, len(o.json))
			vals = append(vals, m[k])
		}
	}
	b = append(b, '{')
	start := 0
	for i, e := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, o.json[start:o.ends[i]]...)
		start = o.ends[i]
		var ok bool
		var err error
		if b, ok, err = appendJSONValue(b, e, 1); !ok || err != nil {
			return b, ok, err
		}
	}
	return append(b, '}'), true, nil
}
