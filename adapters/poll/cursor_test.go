package poll_test

import (
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/poll"
)

func TestParseLookBack(t *testing.T) {
	tests := []struct {
		name    string
		kind    poll.CursorKind
		in      string
		d       time.Duration
		n       int64
		wantErr bool
	}{
		{name: "timestamp", kind: poll.CursorTime, in: "5m", d: 5 * time.Minute},
		{name: "timestamp zero", kind: poll.CursorTime, in: "0"},
		{name: "timestamp empty", kind: poll.CursorTime, in: ""},
		{name: "timestamp spaces", kind: poll.CursorTime, in: " 1s ", d: time.Second},
		{name: "timestamp count", kind: poll.CursorTime, in: "100", wantErr: true},
		{name: "timestamp negative", kind: poll.CursorTime, in: "-1s", wantErr: true},
		{name: "integer", kind: poll.CursorInt, in: "1000", n: 1000},
		{name: "integer zero", kind: poll.CursorInt, in: "0"},
		{name: "integer duration", kind: poll.CursorInt, in: "5m", wantErr: true},
		{name: "integer negative", kind: poll.CursorInt, in: "-5", wantErr: true},
		{name: "string none", kind: poll.CursorString, in: "0"},
		{name: "string any", kind: poll.CursorString, in: "5m", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, n, err := poll.ParseLookBack(tt.kind, tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLookBack(%s, %q) error = %v, want error: %v", tt.kind, tt.in, err, tt.wantErr)
			}
			if d != tt.d || n != tt.n {
				t.Fatalf("ParseLookBack(%s, %q) = %s, %d; want %s, %d", tt.kind, tt.in, d, n, tt.d, tt.n)
			}
		})
	}
}
