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

func TestHasherRecordOrderMatchesValue(t *testing.T) {
	h, ref := &hasher{}, &hasher{}
	for _, data := range []map[string]any{
		{"id": int64(1), "b": "x", "a": 2.5},
		{"id": int64(2), "b": "y", "a": 3.5},
		{"id": int64(3), "b": "y", "c": 3.5},
		{"id": int64(4)},
		{},
		nil,
		{"id": int64(5), "b": "x", "a": 2.5},
	} {
		got := string(h.appendRecord(nil, data))
		want := string(ref.appendValue(nil, data))
		if got != want {
			t.Errorf("appendRecord(%v) = %q, want %q", data, got, want)
		}
	}
}
