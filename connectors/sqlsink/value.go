package sqlsink

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// sqliteTime is how SQLite, which has no time type, holds a timestamp:
// UTC with nine fraction digits, so that the text sorts as the time does.
const sqliteTime = "2006-01-02T15:04:05.000000000Z"

// isDecimal reports whether s is an exact decimal number as text:
// [+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?, which
// FuzzIsDecimal checks it against as a regular expression.
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == exp {
			return false
		}
	}
	return i == len(s)
}

// convert turns v, the value an expression gave, into the value bound for
// a column of type typ in the dialect. A value that does not fit the type
// is an error naming what was given; nil stays NULL.
func (d dialect) convert(typ string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case TypeText:
		if _, ok := v.(string); ok {
			// The value as it is, not boxed again.
			return v, nil
		}
		return text(v)
	case TypeInteger:
		return integer(v)
	case TypeDecimal:
		return decimal(v)
	case TypeDouble:
		return double(v)
	case TypeBoolean:
		return boolean(v)
	case TypeTimestamp:
		t, err := timestamp(v)
		if err != nil {
			return nil, err
		}
		if d.driver == DriverSQLite {
			return t.Format(sqliteTime), nil
		}
		return t, nil
	case TypeJSON:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("is not JSON: %w", err)
		}
		return string(b), nil
	}
	return nil, fmt.Errorf("has the unknown type %q", typ)
}

// text renders v as text: strings as they are, numbers as their exact
// text, times in RFC 3339 (UTC), lists and objects as JSON.
func text(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	case map[string]any, []any:
		b, err := json.Marshal(x)
		return string(b), err
	}
	return "", fmt.Errorf("gave %T, which has no text form", v)
}

func integer(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("gave %v, not an integer", x)
		}
		return int64(x), nil
	case json.Number:
		return parseInteger(x.String())
	case string:
		return parseInteger(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("gave %s, not an integer", describe(v))
}

func parseInteger(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("gave %q, not an integer of 64 bits", s)
	}
	return n, nil
}

// decimal returns v as the exact decimal text a numeric column takes:
// the data's numbers keep the digits they were written with.
func decimal(v any) (string, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return "", fmt.Errorf("gave %v, not a decimal number", x)
		}
		// A float computed by the expression: its shortest exact form.
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("gave %s, not a decimal number", describe(v))
	}
	if !isDecimal(s) {
		return "", fmt.Errorf("gave %q, not a decimal number", s)
	}
	if strings.ContainsAny(s, "eE") {
		// Databases differ on exponents in decimal text; write the
		// number out, exactly.
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return "", fmt.Errorf("gave %q, not a decimal number", s)
		}
		s = ratText(r)
	}
	return s, nil
}

// ratText writes r, a decimal number, in positional notation with every
// digit it has.
func ratText(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	digits := 0
	for d := new(big.Int).Set(r.Denom()); d.Cmp(big.NewInt(1)) > 0; digits++ {
		d.Quo(d, big.NewInt(10))
	}
	return r.FloatString(digits)
}

func double(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case json.Number:
		return parseDouble(x.String())
	case string:
		return parseDouble(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("gave %s, not a number", describe(v))
}

func parseDouble(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("gave %q, not a number", s)
	}
	return f, nil
}

func boolean(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "t", "yes", "y", "1":
			return true, nil
		case "false", "f", "no", "n", "0":
			return false, nil
		}
	case json.Number:
		switch x.String() {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("gave %s, not a boolean (true, false, 1, 0, yes, no)", describe(v))
}

// timestamp returns v as a time in UTC: a time (event.time), RFC 3339
// text (with its offset), or Unix seconds.
func timestamp(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, fmt.Errorf("gave %q, not an RFC 3339 time with its offset such as 2026-03-01T09:30:00+01:00", x)
		}
		return t.UTC(), nil
	case json.Number:
		r, ok := new(big.Rat).SetString(x.String())
		if !ok {
			return time.Time{}, fmt.Errorf("gave %s, not Unix seconds", x)
		}
		ns := new(big.Rat).Mul(r, big.NewRat(1e9, 1))
		n := new(big.Int).Quo(ns.Num(), ns.Denom())
		if !n.IsInt64() {
			return time.Time{}, fmt.Errorf("gave %s, out of range for Unix seconds", x)
		}
		return time.Unix(0, n.Int64()).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("gave %s, not a time", describe(v))
}

// describe names a value's kind for messages, quoting short text.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return strconv.Quote(x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return strconv.FormatBool(x)
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// pgText renders a converted value as the text PostgreSQL casts to its
// column's type (see pgCast); nil is NULL. Times are written in UTC with
// every digit, numbers in their exact form.
func pgText(v any) *string {
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	default:
		s = fmt.Sprint(x)
	}
	return &s
}
