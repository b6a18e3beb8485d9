package audit

import (
	"encoding/json"
	"strings"
	"testing"
)

// jsonCases are documents validJSON must judge as json.Valid does.
var jsonCases = []string{
	``, ` `, `{}`, `[]`, `""`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `-12.5e+3`, `.5`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, ` null `, "\tnull\r\n", `nullnull`,
	`{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":[1,2,{"b":null}],"c":"d"}`,
	`[1,2,]`, `[,]`, `[1 2]`, `[[[[]]]]`, `[[[[]]]`, `[]]`, `{}}`, `{"a":}`, `{"a":1}x`, `[1]  [2]`,
	`"abc`, `"a\"b"`, `"a\\"`, `"\u00e9"`, `"\u00eg"`, `"\u12"`, `"\x"`, `"\/"`, "\"a\x01b\"", "\"a\x7fb\"",
	"\"\xff\xfe\"", `"` + strings.Repeat("x", 40) + `"`, `"` + strings.Repeat("x", 41) + `\n` + strings.Repeat("y", 9) + `"`,
	`"` + strings.Repeat("é", 20) + `"`, `"` + strings.Repeat("x", 15) + "\n" + `"`, `{"k":"` + strings.Repeat("x", 31) + `"}`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat("[", 100) + strings.Repeat("]", 99), strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range jsonCases {
		t.Run(c[:min(len(c), 24)], func(t *testing.T) {
			if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
				t.Errorf("validJSON(%q) = %v, json.Valid says %v", c, got, want)
			}
		})
	}
}

// FuzzValidJSON checks validJSON, the fast path of the data check,
// against json.Valid, which it shadows.
func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON compares validJSON with json.Valid on the 1 KB
// data of the runtime benchmark's events.
func BenchmarkValidJSON(b *testing.B) {
	data := []byte(`{"order_id":"order-7","seq":123456,"total":"129.90","currency":"EUR","note":"` + strings.Repeat("x", 1024-110) + `"}`)
	for _, v := range []struct {
		name  string
		valid func([]byte) bool
	}{{"validJSON", validJSON}, {"json.Valid", json.Valid}} {
		b.Run(v.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if !v.valid(data) {
					b.Fatal("not valid")
				}
			}
		})
	}
}
