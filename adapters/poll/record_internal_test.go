package poll

import (
	"encoding/json"
	"testing"
)

func TestCanonicalKeyFastPathMatchesJSON(t *testing.T) {
	for _, key := range []map[string]any{
		{"id": int64(42)}, {"id": int64(-7)}, {"code": "A-1"}, {"code": "quote\"d"}, {"k<": "v"}, {"id": json.Number("5")},
	} {
		want, _ := json.Marshal(jsonable(key))
		got, err := canonicalKey(key)
		if err != nil || got != string(want) {
			t.Errorf("canonicalKey(%v) = %s, %v; want %s", key, got, err, want)
		}
	}
}
