package mysql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// This file turns column values into the JSON-like values of a change,
// the same whether they come from the binlog (as go-mysql decodes them)
// or from a snapshot query (MySQL's text protocol); see the type mapping
// in README.md.

// zeroTimestamp is a zero TIMESTAMP ('0000-00-00 00:00:00'), which no
// time.Time can hold.
const zeroTimestamp = "0000-00-00T00:00:00Z"

// decodeBinlog converts a value of column c as go-mysql decoded it from a
// row event. Text values are copied into a (nil: allocated each): go-mysql
// hands over strings that point into its packet buffer.
func decodeBinlog(c *column, v any, a *arena) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Type {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		return integer(c, v)
	case "decimal":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("decimal value of type %T", v)
		}
		return json.Number(s), nil
	case "float":
		switch f := v.(type) {
		case float32:
			return float32to64(f), nil
		case float64:
			return f, nil
		}
	case "double":
		switch f := v.(type) {
		case float64:
			return f, nil
		case float32:
			return float64(f), nil
		}
	case "bit":
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("bit value of type %T", v)
		}
		if c.Length == 1 {
			return n != 0, nil
		}
		size := (c.Length + 7) / 8
		b := make([]byte, size)
		for i := size - 1; i >= 0; i-- {
			b[i] = byte(n)
			n >>= 8
		}
		return b, nil
	case "year":
		switch y := v.(type) {
		case int:
			return int64(y), nil
		case int64:
			return y, nil
		}
	case "enum":
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("enum value of type %T", v)
		}
		if n <= 0 || int(n) > len(c.Labels) {
			return "", nil // MySQL's error value, the empty string
		}
		return c.Labels[n-1], nil
	case "set":
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("set value of type %T", v)
		}
		var parts []string
		for i, l := range c.Labels {
			if n&(1<<i) != 0 {
				parts = append(parts, l)
			}
		}
		return strings.Join(parts, ","), nil
	case "json":
		return decodeJSON(asBytes(v))
	case "date":
		return asString(v), nil
	case "datetime":
		if t, ok := v.(time.Time); ok {
			return datetimeOf(t, c.Length, a), nil
		}
		return datetime(asString(v)), nil
	case "timestamp":
		if t, ok := v.(time.Time); ok {
			return t.UTC(), nil
		}
		return timestamp(asString(v))
	case "time":
		return asString(v), nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "vector":
		b := bytes.Clone(asBytes(v))
		if c.Type == "binary" && len(b) < c.Length {
			// The binlog drops a BINARY value's trailing zero bytes;
			// the column holds them.
			b = append(b, make([]byte, c.Length-len(b))...)
		}
		if b == nil {
			b = []byte{}
		}
		return b, nil
	default: // char, varchar, text types, uuid, inet
		return a.string(asString(v)), nil
	}
	return nil, fmt.Errorf("%s value of type %T", c.Type, v)
}

// decodeText converts the text form of a value of column c, as a snapshot
// query returns it.
func decodeText(c *column, b []byte) (any, error) {
	if b == nil {
		return nil, nil
	}
	switch c.Type {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "year":
		if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
			return n, nil
		}
		if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
			return nil, fmt.Errorf("integer %q: %w", b, err)
		}
		return json.Number(string(b)), nil
	case "decimal":
		return json.Number(string(b)), nil
	case "float":
		f, err := strconv.ParseFloat(string(b), 32)
		if err != nil {
			return nil, fmt.Errorf("float %q: %w", b, err)
		}
		return float32to64(float32(f)), nil
	case "double":
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return nil, fmt.Errorf("double %q: %w", b, err)
		}
		return f, nil
	case "bit":
		if c.Length == 1 {
			return len(b) > 0 && b[len(b)-1] != 0, nil
		}
		size := (c.Length + 7) / 8
		out := make([]byte, size)
		copy(out[max(0, size-len(b)):], b[max(0, len(b)-size):])
		return out, nil
	case "json":
		return decodeJSON(b)
	case "datetime":
		return datetime(string(b)), nil
	case "timestamp":
		return timestamp(string(b))
	case "enum", "set", "date", "time":
		return string(b), nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "vector":
		return bytes.Clone(b), nil
	}
	return string(b), nil
}

// integer converts an integer of any width, reading a signed value of an
// UNSIGNED column (the binlog carries no signedness without
// binlog_row_metadata) as unsigned. Values beyond int64 are exact numbers.
func integer(c *column, v any) (any, error) {
	var n int64
	var u uint64
	unsigned := false
	switch x := v.(type) {
	case int8:
		n, u = int64(x), uint64(uint8(x))
	case int16:
		n, u = int64(x), uint64(uint16(x))
	case int32:
		n, u = int64(x), uint64(uint32(x))
		if c.Type == "mediumint" {
			u = uint64(uint32(x) & 0xFFFFFF)
		}
	case int64:
		n, u = x, uint64(x)
	case int:
		n, u = int64(x), uint64(x)
	case uint8:
		u, unsigned = uint64(x), true
	case uint16:
		u, unsigned = uint64(x), true
	case uint32:
		u, unsigned = uint64(x), true
	case uint64:
		u, unsigned = x, true
	default:
		return nil, fmt.Errorf("%s value of type %T", c.Type, v)
	}
	if !c.Unsigned && !unsigned {
		if _, ok := v.(int64); ok {
			// Already what it would become: the syncer's boxed value,
			// not a second one.
			return v, nil
		}
		return n, nil
	}
	if u > math.MaxInt64 {
		return json.Number(strconv.FormatUint(u, 10)), nil
	}
	return int64(u), nil
}

// float32to64 widens a FLOAT to its shortest decimal form, so that 0.1
// stays 0.1 rather than 0.10000000149011612.
func float32to64(f float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	return v
}

// datetime writes a DATETIME as ISO 8601 without a zone, as stored.
func datetime(s string) string {
	return strings.Replace(s, " ", "T", 1)
}

// datetimeOf writes a DATETIME that go-mysql decoded into a time (its
// fields in UTC; it does so from 1970 on, and hands the others over as
// text) as datetime writes the server's text: ISO 8601 without a zone,
// with the column's frac fractional digits. It spares the syncer's
// fmt.Sprintf of the text and the copy datetime makes of it, and writes
// the digits itself: time.Format reads its layout on every call. The text
// is copied into a.
func datetimeOf(t time.Time, frac int, a *arena) string {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	var b [len("2006-01-02T15:04:05.000000")]byte
	digits(b[0:4], y)
	b[4] = '-'
	digits(b[5:7], int(mo))
	b[7] = '-'
	digits(b[8:10], d)
	b[10] = 'T'
	digits(b[11:13], h)
	b[13] = ':'
	digits(b[14:16], mi)
	b[16] = ':'
	digits(b[17:19], s)
	if frac <= 0 {
		return a.string(unsafe.String(&b[0], 19))
	}
	b[19] = '.'
	digits(b[20:26], t.Nanosecond()/1000)
	return a.string(unsafe.String(&b[0], 20+min(frac, 6)))
}

// digits writes v, zero-padded, into all of b.
func digits(b []byte, v int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// timestamp reads a TIMESTAMP written in UTC.
func timestamp(s string) (any, error) {
	if strings.HasPrefix(s, "0000-00-00") {
		return zeroTimestamp, nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		return nil, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t, nil
}

func decodeJSON(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return v, nil
}

func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return []byte(fmt.Sprint(v))
}
