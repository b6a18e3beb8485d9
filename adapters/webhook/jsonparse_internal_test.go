package webhook

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeJSONMatchesEncodingJSON(t *testing.T) {
	tests := []struct{ name, in string }{
		{name: "object", in: `{"a":1,"b":[true,false,null],"c":{"d":"e"},"a":2}`},
		{name: "duplicate key", in: `{"after":{"a":"1"},"after":{"b":"2"}}`},
		{name: "all kinds", in: `{"a":[1,2.5,-3e4,"x\u00e9\ud83d\ude00",null,true]}`},
		{name: "unterminated array", in: `[`},
		{name: "numbers", in: `[0,-0,1.5,-2e10,3E+2,4e-2,12345678901234567890]`},
		{name: "escapes", in: `"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"`},
		{name: "lone surrogate", in: `"\ud800x\udc00"`},
		{name: "invalid utf8", in: "\"\xff\xfe\""},
		{name: "white space", in: " \t\n{ \"a\" : [ 1 , 2 ] } \r\n"},
		{name: "empty containers", in: `[{},[],""]`},
		{name: "bad leading zero", in: `01`},
		{name: "bad number", in: `-`},
		{name: "trailing comma", in: `[1,]`},
		{name: "control char", in: "\"a\x01\""},
		{name: "bad escape", in: `"\x"`},
		{name: "unterminated", in: `{"a":"b`},
		{name: "trailing data", in: `{} x`},
		{name: "deep", in: strings.Repeat("[", 20000) + strings.Repeat("]", 20000)},
		{name: "deep objects", in: strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999)},
		{name: "long plain string", in: `{"note":"` + strings.Repeat("x", 150) + `","k":"` + strings.Repeat("y", 17) + `\n"}`},
		{name: "control char after plain run", in: `"` + strings.Repeat("x", 20) + "\x1f" + `"`},
		{name: "surrogate pair", in: `["\ud83d\ude00","\ud800\u0041","\ud800\uzzzz"]`},
		{name: "bad second escape", in: `"\ud800\u12"`},
		{name: "unterminated escape", in: `"abc\`},
		{name: "number forms", in: `[-0.5e+3,1E9,-,1.,1e,01]`},
		{name: "unclosed object", in: `{"a":[1,{"b":2}`},
		{name: "missing colon", in: `{"a" 1}`},
		{name: "bad key", in: `{1:2}`},
		{name: "bad literal", in: `[tru]`},
		{name: "trailing comma object", in: `{"a":1,}`},
		{name: "mismatched close", in: `[1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDecodeJSON(t, []byte(tt.in))
		})
	}
}

// FuzzDecodeJSON checks decodeJSON and checkJSON against encoding/json
// with UseNumber: the same documents accepted, the same values. Its seeds
// in testdata/fuzz are the cases of TestDecodeJSONMatchesEncodingJSON.
func FuzzDecodeJSON(f *testing.F) {
	f.Fuzz(checkDecodeJSON)
}

func checkDecodeJSON(t *testing.T, b []byte) {
	t.Helper()
	got, err := decodeJSON(b)
	want, werr := parseJSONStd(b)
	// checkJSON's skipping parser fails where decodeJSON does, with the
	// same error.
	if cerr := checkJSON(b); fmt.Sprint(cerr) != fmt.Sprint(err) {
		t.Fatalf("checkJSON(%q) error %v, decodeJSON error %v", b, cerr, err)
	}
	if (err == nil) != (werr == nil) {
		t.Fatalf("decodeJSON(%q) error %v, encoding/json error %v", b, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeJSON(%q) = %#v, encoding/json = %#v", b, got, want)
	}
}

func BenchmarkParseJSON1KB(b *testing.B) {
	body := []byte(`{"type":"order.created","data":{"id":"o-1","lines":[`)
	for len(body) < 1000 {
		body = append(body, `{"sku":"ABC-123","qty":1,"price":"9.99"},`...)
	}
	body = append(body[:len(body)-1], `]}}`...)
	b.Run("tributary", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeJSON(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := parseJSONStd(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
