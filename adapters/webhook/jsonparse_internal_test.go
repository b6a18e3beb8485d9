package webhook

import (
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
	if cerr := checkJSON(b); (cerr == nil) != (err == nil) {
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
