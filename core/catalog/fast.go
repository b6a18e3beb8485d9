package catalog

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fastSchema is a pre-check for the plain schemas most event types use:
// types, properties, required, additionalProperties: false, bounds, lengths,
// patterns, string enums, formats and items. It answers "certainly valid"
// without allocating; any other answer (invalid, or not sure, as for a
// decimal too long for float64) sends the value to the full validator, which
// decides and explains. So the pre-check can only save time, never change a
// verdict, as long as it never calls an invalid value valid.
type fastSchema struct {
	never    bool // the schema false
	types    uint8
	props    map[string]*fastSchema
	required []string
	closed   bool // additionalProperties: false
	items    *fastSchema

	minimum, maximum, exclusiveMinimum, exclusiveMaximum *float64

	minLength, maxLength int // -1 when unset
	minItems, maxItems   int // -1 when unset
	pattern              *regexp.Regexp
	enum                 map[string]bool
	format               func(string) bool // nil when unset
}

const (
	tNull uint8 = 1 << iota
	tBool
	tNumber
	tInteger
	tString
	tArray
	tObject
)

var typeBits = map[string]uint8{
	"null": tNull, "boolean": tBool, "number": tNumber, "integer": tInteger,
	"string": tString, "array": tArray, "object": tObject,
}

// annotations are keywords that never affect validity.
var annotations = map[string]bool{
	"$id": true, "$comment": true, "$defs": true, "definitions": true, "$anchor": true,
	"title": true, "description": true, "default": true, "examples": true,
	"deprecated": true, "readOnly": true, "writeOnly": true,
}

const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// newFast builds the pre-check of doc, a normalized schema, or returns nil
// when doc uses anything it does not handle. formats compiles the schema
// {"format": name}, memoized per catalog.
func newFast(doc any, root bool, formats func(string) *jsonschema.Schema) *fastSchema {
	switch d := doc.(type) {
	case bool:
		return &fastSchema{never: !d, minLength: -1, maxLength: -1, minItems: -1, maxItems: -1}
	case map[string]any:
		f := &fastSchema{minLength: -1, maxLength: -1, minItems: -1, maxItems: -1}
		for k, v := range d {
			if annotations[k] {
				continue
			}
			if !f.set(k, v, root, formats) {
				return nil
			}
		}
		return f
	}
	return nil
}

// set reads the keyword k, of value v, into f. It reports false when the
// pre-check does not handle the keyword or its value.
func (f *fastSchema) set(k string, v any, root bool, formats func(string) *jsonschema.Schema) bool {
	ok := true
	switch k {
	case "$schema":
		s, _ := v.(string)
		ok = root && (s == draft2020 || s == draft2020+"#")
	case "type":
		ok = f.setTypes(v)
	case "properties":
		f.props, ok = fastProperties(v, formats)
	case "required":
		f.required, ok = stringList(v)
	case "additionalProperties":
		b, isBool := v.(bool)
		ok = isBool
		f.closed = !b
	case "items":
		f.items = newFast(v, false, formats)
		ok = f.items != nil
	case "minimum":
		f.minimum, ok = bound(v)
	case "maximum":
		f.maximum, ok = bound(v)
	case "exclusiveMinimum":
		f.exclusiveMinimum, ok = bound(v)
	case "exclusiveMaximum":
		f.exclusiveMaximum, ok = bound(v)
	case "minLength":
		f.minLength, ok = count(v)
	case "maxLength":
		f.maxLength, ok = count(v)
	case "minItems":
		f.minItems, ok = count(v)
	case "maxItems":
		f.maxItems, ok = count(v)
	case "pattern":
		f.pattern, ok = compilePattern(v)
	case "enum":
		f.enum, ok = stringSet(v)
	case "format":
		f.format, ok = fastFormat(v, formats)
	default:
		ok = false
	}
	return ok
}

// fastProperties builds the pre-check of each property of a properties
// keyword.
func fastProperties(v any, formats func(string) *jsonschema.Schema) (map[string]*fastSchema, bool) {
	m, isMap := v.(map[string]any)
	if !isMap {
		return nil, false
	}
	props := make(map[string]*fastSchema, len(m))
	for name, sub := range m {
		fs := newFast(sub, false, formats)
		if fs == nil {
			return nil, false
		}
		props[name] = fs
	}
	return props, true
}

// stringList reads a list of strings, as a required keyword holds.
func stringList(v any) ([]string, bool) {
	l, isList := v.([]any)
	if !isList {
		return nil, false
	}
	var list []string
	for _, e := range l {
		s, isStr := e.(string)
		if !isStr {
			return nil, false
		}
		list = append(list, s)
	}
	return list, true
}

// stringSet reads an enum keyword whose values are all strings.
func stringSet(v any) (map[string]bool, bool) {
	l, isList := v.([]any)
	if !isList {
		return nil, false
	}
	set := make(map[string]bool, len(l))
	for _, e := range l {
		s, isStr := e.(string)
		if !isStr {
			return nil, false
		}
		set[s] = true
	}
	return set, true
}

// compilePattern compiles a pattern keyword.
func compilePattern(v any) (*regexp.Regexp, bool) {
	s, isStr := v.(string)
	if !isStr {
		return nil, false
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, false
	}
	return re, true
}

// fastFormat returns the check of a format keyword, whose schema formats
// compiles.
func fastFormat(v any, formats func(string) *jsonschema.Schema) (func(string) bool, bool) {
	s, isStr := v.(string)
	if !isStr {
		return nil, false
	}
	full := formats(s)
	if full == nil {
		return nil, false
	}
	return formatCheck(s, full), true
}

func (f *fastSchema) setTypes(v any) bool {
	switch t := v.(type) {
	case string:
		b, ok := typeBits[t]
		f.types = b
		return ok
	case []any:
		for _, e := range t {
			s, _ := e.(string)
			b, ok := typeBits[s]
			if !ok {
				return false
			}
			f.types |= b
		}
		return len(t) > 0
	}
	return false
}

// bound reads a numeric bound that float64 holds exactly enough: at most 15
// significant digits, so that comparisons in float64 keep their order.
func bound(v any) (*float64, bool) {
	var f float64
	switch n := v.(type) {
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case float64:
		f = n
	case json.Number:
		if !shortDecimal(string(n)) {
			return nil, false
		}
		var err error
		if f, err = strconv.ParseFloat(string(n), 64); err != nil {
			return nil, false
		}
	default:
		return nil, false
	}
	if math.Abs(f) > 1<<53 || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, false
	}
	return &f, true
}

func count(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, n >= 0
	case int64:
		return int(n), n >= 0
	case float64:
		return int(n), n >= 0 && n == math.Trunc(n)
	case json.Number:
		i, err := strconv.Atoi(string(n))
		return i, err == nil && i >= 0
	}
	return 0, false
}

// shortDecimal reports whether the JSON number s has at most 15
// significant digits and a small exponent.
func shortDecimal(s string) bool {
	digits, leading := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if c != '0' || !leading {
				leading = false
				digits++
			}
		case c == 'e' || c == 'E':
			exp, err := strconv.Atoi(s[i+1:])
			return err == nil && digits <= 15 && exp > -300 && exp < 300
		}
	}
	return digits <= 15
}

// valid reports whether v certainly conforms. false means "ask the full
// validator".
func (f *fastSchema) valid(v any) bool {
	if f.never {
		return false
	}
	var t uint8
	switch x := v.(type) {
	case nil:
		t = tNull
	case bool:
		t = tBool
	case string:
		t = tString
		if !f.validString(x) {
			return false
		}
	case map[string]any:
		t = tObject
		if !f.validObject(x) {
			return false
		}
	case []any:
		t = tArray
		if f.minItems >= 0 && len(x) < f.minItems || f.maxItems >= 0 && len(x) > f.maxItems {
			return false
		}
		if f.items != nil {
			for _, e := range x {
				if !f.items.valid(e) {
					return false
				}
			}
		}
	default:
		n, integral, ok := number(v)
		if !ok {
			return false
		}
		t = tNumber
		if integral {
			t |= tInteger
		}
		if !f.validNumber(n) {
			return false
		}
	}
	if f.types != 0 && f.types&t == 0 {
		return false
	}
	if f.enum != nil {
		s, ok := v.(string)
		return ok && f.enum[s]
	}
	return true
}

func (f *fastSchema) validString(s string) bool {
	if f.minLength >= 0 || f.maxLength >= 0 {
		n := utf8.RuneCountInString(s)
		if f.minLength >= 0 && n < f.minLength || f.maxLength >= 0 && n > f.maxLength {
			return false
		}
	}
	if f.pattern != nil && !f.pattern.MatchString(s) {
		return false
	}
	if f.format != nil && !f.format(s) {
		return false
	}
	return true
}

func (f *fastSchema) validObject(m map[string]any) bool {
	for _, r := range f.required {
		if _, ok := m[r]; !ok {
			return false
		}
	}
	for k, v := range m {
		p, ok := f.props[k]
		if !ok {
			if f.closed {
				return false
			}
			continue
		}
		if !p.valid(v) {
			return false
		}
	}
	return true
}

func (f *fastSchema) validNumber(n float64) bool {
	// A value equal to a bound in float64 may differ from it in exact
	// decimal terms: leave it to the full validator.
	for _, b := range []*float64{f.minimum, f.maximum, f.exclusiveMinimum, f.exclusiveMaximum} {
		if b != nil && *b == n {
			return false
		}
	}
	if f.minimum != nil && n < *f.minimum {
		return false
	}
	if f.maximum != nil && n > *f.maximum {
		return false
	}
	if f.exclusiveMinimum != nil && n <= *f.exclusiveMinimum {
		return false
	}
	if f.exclusiveMaximum != nil && n >= *f.exclusiveMaximum {
		return false
	}
	return true
}

// number converts a numeric value to float64 when that is exact enough to
// compare, and tells whether it is an integer. ok is false for values that
// are not numbers, and for numbers the pre-check leaves to the full
// validator (long decimals, huge integers, decimals written like 1.0).
func number(v any) (n float64, integral, ok bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true, x > -1<<53 && x < 1<<53
	case int64:
		return float64(x), true, x > -1<<53 && x < 1<<53
	case int32:
		return float64(x), true, true
	case int16:
		return float64(x), true, true
	case int8:
		return float64(x), true, true
	case uint:
		return float64(x), true, x < 1<<53
	case uint64:
		return float64(x), true, x < 1<<53
	case uint32:
		return float64(x), true, true
	case uint16:
		return float64(x), true, true
	case uint8:
		return float64(x), true, true
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1<<53 {
			return 0, false, false
		}
		return x, x == math.Trunc(x), true
	case json.Number:
		s := string(x)
		if !shortDecimal(s) {
			return 0, false, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '.' || s[i] == 'e' || s[i] == 'E' {
				// A fraction: not an integer here, though 1.0 is one to
				// the full validator, which gets the final word.
				f, err := strconv.ParseFloat(s, 64)
				return f, false, err == nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		return f, true, err == nil
	}
	return 0, false, false
}

// formatCheck returns the check of one format: a quick strict test for
// date-time, date and uuid, which accepts only strings the full check
// accepts too, backed by full, the compiled schema {"format": name}, for
// everything else.
func formatCheck(name string, full *jsonschema.Schema) func(string) bool {
	fullCheck := func(s string) bool { return full.Validate(s) == nil }
	var quick func(string) bool
	switch name {
	case "date-time":
		quick = quickDateTime
	case "date":
		quick = quickDate
	case "uuid":
		quick = quickUUID
	default:
		return fullCheck
	}
	return func(s string) bool { return quick(s) || fullCheck(s) }
}

// quickDateTime accepts yyyy-mm-ddThh:mm:ss[.frac](Z|+hh:mm), without leap
// seconds.
func quickDateTime(s string) bool {
	if len(s) < 20 || (s[10] != 'T' && s[10] != 't') || !quickDate(s[:10]) {
		return false
	}
	t := s[11:]
	if len(t) < 9 || t[2] != ':' || t[5] != ':' {
		return false
	}
	h, ok1 := twoDigits(t[0:2])
	m, ok2 := twoDigits(t[3:5])
	sec, ok3 := twoDigits(t[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || sec > 59 {
		return false
	}
	t = t[8:]
	if len(t) > 0 && t[0] == '.' {
		i := 1
		for i < len(t) && t[i] >= '0' && t[i] <= '9' {
			i++
		}
		if i == 1 {
			return false
		}
		t = t[i:]
	}
	if t == "Z" || t == "z" {
		return true
	}
	if len(t) != 6 || (t[0] != '+' && t[0] != '-') || t[3] != ':' {
		return false
	}
	zh, ok1 := twoDigits(t[1:3])
	zm, ok2 := twoDigits(t[4:6])
	return ok1 && ok2 && zh <= 23 && zm <= 59
}

func twoDigits(s string) (int, bool) {
	if s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// quickDate accepts exactly what time.Parse("2006-01-02", s) accepts:
// four year digits, two month digits from 01 to 12 and two day digits that
// name a day of that month, leap years included. It is the date format's own
// test, without time.Parse's cost.
func quickDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	hi, ok1 := twoDigits(s[0:2])
	lo, ok2 := twoDigits(s[2:4])
	m, ok3 := twoDigits(s[5:7])
	d, ok4 := twoDigits(s[8:10])
	if !ok1 || !ok2 || !ok3 || !ok4 || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= daysIn(time.Month(m), hi*100+lo)
}

// daysIn returns the number of days of month m in year y, proleptic
// Gregorian, as the time package counts them.
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// quickUUID accepts 8-4-4-4-12 hexadecimal digits.
func quickUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
