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
