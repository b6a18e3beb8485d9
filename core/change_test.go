package core_test

import (
	"encoding/json"
	"testing"

	"github.com/tributary/tributary/core"
)

// TestMarshalRawAbsentRecords checks that the dead-letter form of a change
// writes an absent record as null and a present empty one as {}.
func TestMarshalRawAbsentRecords(t *testing.T) {
	pos := core.Position{Version: 1, Data: []byte("7")}
	tests := []struct {
		name string
		ch   core.Change
		want map[string]string
	}{
		{name: "create", ch: core.Change{Op: core.OpCreate, Key: map[string]any{"id": 7}, After: map[string]any{"id": 7}, Position: pos},
			want: map[string]string{"key": `{"id":7}`, "before": `null`, "after": `{"id":7}`}},
		{name: "delete", ch: core.Change{Op: core.OpDelete, Key: map[string]any{"id": 7}, Before: map[string]any{"id": 7}, Position: pos},
			want: map[string]string{"before": `{"id":7}`, "after": `null`}},
		{name: "message without key", ch: core.Change{Op: core.OpMessage, Payload: "hi", Position: pos},
			want: map[string]string{"key": `null`, "before": `null`, "after": `null`, "payload": `"hi"`}},
		{name: "present and empty", ch: core.Change{Op: core.OpUpdate, Before: map[string]any{}, After: map[string]any{}, Position: pos},
			want: map[string]string{"before": `{}`, "after": `{}`}},
		{name: "invalid with raw bytes", ch: core.Change{Op: core.OpCreate, Raw: []byte("S002,\"MS-2"), Invalid: "line 3: broken", Position: pos},
			want: map[string]string{"after": `null`, "invalid": `"line 3: broken"`, "raw_base64": `"UzAwMiwiTVMtMg=="`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.ch.MarshalRaw()
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]json.RawMessage
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if string(got[k]) != want {
					t.Errorf("%s = %s, want %s (in %s)", k, got[k], want, b)
				}
			}
		})
	}
}
