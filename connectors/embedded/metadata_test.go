package embedded

import (
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"
)

// These tests are internal: the metadata encoding is not exported, and its
// fast decoding path must agree with encoding/json.

func TestMetadataEncoding(t *testing.T) {
	tests := []struct {
		name string
		md   map[string]string
	}{
		{name: "empty", md: map[string]string{}},
		{name: "plain", md: map[string]string{"ce_type": "com.example.order.accepted", "ce_partitionkey": "order-1", "": ""}},
		{name: "escapes", md: map[string]string{"q": `say "hi" \ bye`, "ctl": "a\nb\tc\rd\x00\x1f"}},
		{name: "unicode", md: map[string]string{"ключ": "värde ✓ 😀"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := encodeMetadata(tt.md)
			var viaJSON map[string]string
			if err := json.Unmarshal(enc, &viaJSON); err != nil {
				t.Fatalf("encoding %s is not JSON: %v", enc, err)
			}
			got, err := decodeMetadata(enc)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.md) || !maps.Equal(viaJSON, tt.md) {
				t.Errorf("round trip of %q gave %q (encoding/json: %q)", tt.md, got, viaJSON)
			}
		})
	}
}

func FuzzMetadataEncoding(f *testing.F) {
	f.Add("ce_type", "x", "k2", "a\"b")
	f.Add("", "", "\\", "\n")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		md := map[string]string{k1: v1, k2: v2}
		for _, s := range []string{k1, v1, k2, v2} {
			if !utf8.ValidString(s) {
				t.Skip("encoding/json replaces invalid UTF-8")
			}
		}
		got, err := decodeMetadata(encodeMetadata(md))
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, md) {
			t.Errorf("round trip of %q gave %q", md, got)
		}
	})
}
