package core_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tributary/tributary/core"
)

// FuzzAppendJSONString checks AppendJSONString against encoding/json, with
// and without HTML escaping. Its seeds are in testdata/fuzz.
func FuzzAppendJSONString(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string, escapeHTML bool) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := core.AppendJSONString([]byte("x"), s, escapeHTML); string(got) != "x"+string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("AppendJSONString(%q, %v) = %s, encoding/json = %s", s, escapeHTML, got[1:], want.Bytes())
		}
	})
}
