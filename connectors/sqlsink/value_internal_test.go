package sqlsink

import (
	"regexp"
	"strings"
	"testing"
)

// decimalRe is what isDecimal matches, as a regular expression.
var decimalRe = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$`)

// FuzzIsDecimal: isDecimal matches what decimalRe matches.
func FuzzIsDecimal(f *testing.F) {
	for _, s := range []string{"129.90", "-0.5", "+.5", "5.", ".", "", "-", "1e5", "1E+5", "1e", "1e+", ".e1", "1.2.3", "12a", " 1", "1 ", "0x10", "١٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isDecimal(s), decimalRe.MatchString(s); got != want {
			t.Fatalf("isDecimal(%q) = %v, the expression says %v", s, got, want)
		}
	})
}

// copyEscapes is appendCopyText's escaping, written plainly.
var copyEscapes = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

// FuzzAppendCopyText: appendCopyText escapes as copyEscapes does, and
// appends to what is there.
func FuzzAppendCopyText(f *testing.F) {
	for _, s := range []string{"", "plain", "a\tb\nc\rd\\e", strings.Repeat("x", 30) + "\\", "abcdefg\x01hijklmnop\ttail", "é日本語\n" + strings.Repeat("y", 17), "\r\r\r\r\r\r\r\r\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(appendCopyText([]byte("head|"), s))
		if want := "head|" + copyEscapes.Replace(s); got != want {
			t.Fatalf("appendCopyText(%q) = %q, want %q", s, got, want)
		}
	})
}
