package cdc_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/core"
)

func TestPositionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		pos  cdc.Position
		data string
	}{
		{"stream", cdc.Position{Commit: "0/16B3748", Index: 3}, `{"lsn":"0/16B3748","i":3}`},
		{"stream first", cdc.Position{Commit: "1A/0", Index: 0}, `{"lsn":"1A/0","i":0}`},
		{"snapshot", cdc.Position{Snapshot: &cdc.SnapshotPosition{At: "0/10", Table: "public.orders", Key: []string{"42", "a\"b"}}}, `{"snap":"0/10","t":"public.orders","k":["42","a\"b"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := tc.pos.Encode()
			if enc.Version != cdc.PositionVersion || string(enc.Data) != tc.data {
				t.Fatalf("Encode = v%d %s, want %s", enc.Version, enc.Data, tc.data)
			}
			got, err := cdc.DecodePosition(enc)
			if err != nil || !reflect.DeepEqual(got, tc.pos) {
				t.Fatalf("DecodePosition = %+v, %v", got, err)
			}
		})
	}
}

func TestDecodeBadPosition(t *testing.T) {
	for _, p := range []core.Position{
		{Version: 2, Data: []byte(`{"lsn":"0/1","i":0}`)},
		{Version: 1, Data: []byte(`not json`)},
		{Version: 1, Data: []byte(`{}`)},
		{Version: 1, Data: []byte(`{"snap":"0/1"}`)},
	} {
		if _, err := cdc.DecodePosition(p); !errors.Is(err, cdc.ErrBadPosition) {
			t.Errorf("DecodePosition(%s) = %v", p, err)
		}
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name                            string
		mode                            cdc.SnapshotMode
		hasCheckpoint, inSnapshot, kept bool
		want                            bool
		wantErr                         error
	}{
		{"initial, fresh", cdc.SnapshotInitial, false, false, false, true, nil},
		{"never, fresh", cdc.SnapshotNever, false, false, false, false, nil},
		{"initial, streaming", cdc.SnapshotInitial, true, false, true, false, nil},
		{"initial, mid-snapshot", cdc.SnapshotInitial, true, true, true, true, nil},
		{"initial, log gone", cdc.SnapshotInitial, true, false, false, false, cdc.ErrLogGone},
		{"never, log gone", cdc.SnapshotNever, true, false, false, false, cdc.ErrLogGone},
		{"when needed, log gone", cdc.SnapshotWhenNeeded, true, false, false, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cdc.Decide(tc.mode, tc.hasCheckpoint, tc.inSnapshot, tc.kept)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Decide = %v, %v", got, err)
			}
		})
	}
}

func TestPlanRemaining(t *testing.T) {
	pl := cdc.NewPlan([]string{"public.b", "public.a", "public.c", "public.a"})
	if !reflect.DeepEqual(pl.Tables, []string{"public.a", "public.b", "public.c"}) {
		t.Fatalf("plan %v", pl.Tables)
	}
	got := pl.Remaining(&cdc.SnapshotPosition{Table: "public.b", Key: []string{"7"}})
	want := []cdc.Step{{Table: "public.b", After: []string{"7"}}, {Table: "public.c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Remaining = %+v", got)
	}
	if got := pl.Remaining(nil); len(got) != 3 || got[0].After != nil {
		t.Fatalf("Remaining(nil) = %+v", got)
	}
}
