package kafka

import (
	"encoding/binary"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/tributary/tributary/core"
)

func TestVarintLen(t *testing.T) {
	for _, v := range []int64{0, 1, -1, 63, -64, 64, -65, 8191, 8192, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64} {
		if got, want := varintLen(v), len(binary.AppendVarint(nil, v)); got != want {
			t.Errorf("varintLen(%d) = %d, want %d", v, got, want)
		}
	}
}

func TestAddSeqWraps(t *testing.T) {
	for _, tc := range []struct{ seq, n, want int32 }{
		{0, 5, 5},
		{math.MaxInt32 - 5, 5, math.MaxInt32},
		{math.MaxInt32 - 5, 6, 0},
		{math.MaxInt32, 1, 0},
		{math.MaxInt32 - 1, 10, 8},
	} {
		if got := addSeq(tc.seq, tc.n); got != tc.want {
			t.Errorf("addSeq(%d, %d) = %d, want %d", tc.seq, tc.n, got, tc.want)
		}
	}
}

// headerMap returns headers as a map, failing on a name given twice.
func headerMap(t *testing.T, headers []sarama.RecordHeader) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range headers {
		if _, dup := out[string(h.Key)]; dup {
			t.Fatalf("header %q twice", h.Key)
		}
		out[string(h.Key)] = string(h.Value)
	}
	return out
}

// TestEventHeadersMatchMessage checks that an event published as it is
// gets exactly the headers of its ToMessage form, whichever optional
// attributes are set.
func TestEventHeadersMatchMessage(t *testing.T) {
	full := core.Event{
		ID: "0b7c6a1e-0000-5000-8000-000000000001", Source: "/erp", SpecVersion: core.SpecVersion, Type: "t",
		Subject: "s", Time: time.Date(2026, 5, 6, 7, 8, 9, 10, time.FixedZone("x", 7200)), DataContentType: "application/json",
		DataSchema: "urn:s", PartitionKey: "k", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
	}
	events := []core.Event{full, {ID: "i", Source: "/s", SpecVersion: "1.0", Type: "t"}}
	for _, edit := range []func(*core.Event){
		func(e *core.Event) { e.Subject = "" }, func(e *core.Event) { e.Time = time.Time{} },
		func(e *core.Event) { e.DataSchema = "" }, func(e *core.Event) { e.PartitionKey = "" },
		func(e *core.Event) { e.TraceParent, e.TraceState = "", "" }, func(e *core.Event) { e.DataContentType = "" },
		func(e *core.Event) { e.TraceState = "" },
	} {
		e := full
		edit(&e)
		events = append(events, e)
	}
	for i, e := range events {
		got, _ := appendEventHeaders(nil, nil, &e)
		want := appendHeaders(nil, e.ToMessage())
		if g, w := headerMap(t, got), headerMap(t, want); !maps.Equal(g, w) {
			t.Errorf("event %d: headers %q, message headers %q", i, g, w)
		}
	}
}
