package poll

import (
	"encoding/json"
	"testing"
	"time"
)

func TestCanonicalKeyFastPathMatchesJSON(t *testing.T) {
	h := &hasher{}
	for _, key := range []map[string]any{
		{"id": int64(42)}, {"id": int64(-7)}, {"code": "A-1"}, {"code": "quote\"d"}, {"k<": "v"}, {"id": json.Number("5")}, {"a": int64(1), "b": "x"}, {"id": "x"},
	} {
		want, _ := json.Marshal(jsonable(key))
		got, err := canonicalKey(key)
		if err != nil || got != string(want) {
			t.Errorf("canonicalKey(%v) = %s, %v; want %s", key, got, err, want)
		}
		// Twice: the second time by the remembered name.
		for range 2 {
			if b, err := h.appendKey(nil, key); err != nil || string(b) != string(want) {
				t.Errorf("appendKey(%v) = %s, %v; want %s", key, b, err, want)
			}
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

// TestContentHashIsStable pins the content hash and the cursor position:
// both are stored (seen sets, positions, hence event ids), so a change to
// either encoding would re-emit records already delivered.
func TestContentHashIsStable(t *testing.T) {
	h := &hasher{}
	data := map[string]any{"id": int64(7), "status": "paid", "total": json.Number("12.50"),
		"at": time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC), "ok": true, "none": nil}
	sum := h.sum(data)
	key, err := appendCanonicalKey(nil, map[string]any{"id": int64(7)})
	if err != nil {
		t.Fatal(err)
	}
	pos := string((&hasher{}).appendCursorPos(nil, cval{i: 1704164645000006000}, CursorTime, key, sum))
	const want = `{"c":"2024-01-02T03:04:05.000006Z","k":{"id":7},"h":"Mf27TG_bRbOuneRH"}`
	if pos != want {
		t.Errorf("position %s, want %s", pos, want)
	}
	// The same, formatted with the time the record's hash just cached.
	if pos := string(h.appendCursorPos(nil, cval{i: 1704164645000006000}, CursorTime, key, sum)); pos != want {
		t.Errorf("position after hashing %s, want %s", pos, want)
	}
	if id := h.seenID(key, cval{i: 42}, sum); hashText(id) != `CuwBYSkKcBRTO7K_` {
		t.Errorf("seen id %s", hashText(id))
	}
}
