package catalog

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"
)

// Normalize returns v as a JSON-compatible value: nil, bool, string,
// json.Number, a Go integer, float64, []any or map[string]any, nested. It
// converts
//
//   - time.Time to an RFC 3339 string with nanoseconds when present,
//   - []byte to a standard base64 string,
//   - float32 to float64,
//   - maps with non-string keys (as YAML decoders produce) to map[string]any,
//     keys printed with fmt,
//   - other slices, arrays and maps with string keys element by element,
//   - named string, bool and number types to their underlying kind,
//   - a nil map or slice (such as the absent before of an insert) to nil,
//     which encodes as JSON null, as encoding/json writes it; an empty
//     one stays empty ({} or []).
//
// Integers and json.Number values are kept as they are, so large and
// decimal numbers stay exact. NaN, infinities and values JSON cannot hold
// (functions, channels, structs) are errors naming the value's location as
// a JSON pointer.
func Normalize(v any) (any, error) {
	return normalize(v, "", 0)
}

// maxDepth bounds nesting, so that a cyclic value is an error, not a stack
// overflow.
const maxDepth = 100

func normalize(v any, at string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("value at %s nests deeper than %d levels", pointerOrRoot(at), maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, string, json.Number,
		int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return v, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("value at %s is %v, which JSON cannot hold", pointerOrRoot(at), x)
		}
		return v, nil
	case float32:
		return normalize(float64(x), at, depth)
	case time.Time:
		return formatTime(x), nil
	case *time.Time:
		if x == nil {
			return nil, nil
		}
		return formatTime(*x), nil
	case []byte:
		return base64.StdEncoding.EncodeToString(x), nil
	case json.RawMessage:
		var out any
		if err := unmarshalNumber(x, &out); err != nil {
			return nil, fmt.Errorf("value at %s is not valid JSON: %w", pointerOrRoot(at), err)
		}
		return out, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, at+"/"+escapePointer(k), depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case []any:
		if x == nil {
			return nil, nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, at+"/"+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[any]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			n, err := normalize(e, at+"/"+escapePointer(ks), depth+1)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	}
	return normalizeReflect(reflect.ValueOf(v), at, depth)
}

func normalizeReflect(rv reflect.Value, at string, depth int) (any, error) {
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return normalize(rv.Float(), at, depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return normalize(rv.Elem().Interface(), at, depth+1)
	case reflect.Slice:
		if rv.IsNil() {
			return nil, nil
		}
		fallthrough
	case reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			n, err := normalize(rv.Index(i).Interface(), at+"/"+strconv.Itoa(i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case reflect.Map:
		if rv.IsNil() {
			return nil, nil
		}
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			ks := fmt.Sprint(it.Key().Interface())
			n, err := normalize(it.Value().Interface(), at+"/"+escapePointer(ks), depth+1)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	}
	if !rv.IsValid() {
		return nil, nil
	}
	return nil, fmt.Errorf("value at %s is a %s, which JSON cannot hold", pointerOrRoot(at), rv.Type())
}

// pointerOrRoot returns the JSON pointer p, or "(root)" for the empty
// pointer, which reads poorly in a message.
func pointerOrRoot(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

// escapePointer escapes a JSON pointer reference token (RFC 6901).
func escapePointer(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '~' || s[i] == '/' {
			return escapeSlow(s)
		}
	}
	return s
}

func escapeSlow(s string) string {
	b := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func unmarshalNumber(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// formatTime is t.Format(time.RFC3339Nano) in one allocation, not two.
func formatTime(t time.Time) string {
	var buf [64]byte
	return string(t.AppendFormat(buf[:0], time.RFC3339Nano))
}
