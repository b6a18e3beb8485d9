package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// roundTrip sends m over transport and returns what the other end reads.
func roundTrip(t *testing.T, transport string, m *plugin.Message) *plugin.Message {
	t.Helper()
	var send func(*plugin.Message) error
	var recv func() (*plugin.Message, error)
	switch transport {
	case plugin.TransportJSONL:
		var buf bytes.Buffer
		w := plugin.NewJSONConn(&bytes.Buffer{}, &buf)
		send = w.Send
		recv = func() (*plugin.Message, error) { return plugin.NewJSONConn(&buf, &bytes.Buffer{}).Recv() }
	default:
		c := plugin.NewGRPCConn(newPipe(t))
		send, recv = c.Send, c.Recv
	}
	if err := send(m); err != nil {
		t.Fatalf("send: %v", err)
	}
	out, err := recv()
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return out
}

// TestDeliveriesRoundTrip: on both transports, deliveries keep their
// event (JSON and binary data), mapped value (numbers exact), attempt,
// replay and position, and results their status, error, Retry-After,
// response and gone mark; the hello's role and a target's ids travel too.
func TestDeliveriesRoundTrip(t *testing.T) {
	ev := func(id, ct string, data []byte) *core.Event {
		return &core.Event{ID: id, Source: "/s", SpecVersion: core.SpecVersion, Type: "t", Subject: "k", PartitionKey: "k",
			Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC), DataContentType: ct, Data: data}
	}
	in := []core.Delivery{
		{Event: ev("a", "application/json", []byte(`{"total":129.90}`)), Data: map[string]any{"n": json.Number("1.50")}, Attempt: 2, Position: "events/0/41"},
		{Event: ev("b", "application/octet-stream", []byte{0, 1, 2}), Replay: true},
	}
	wire, err := plugin.ToWireDeliveries(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []string{plugin.TransportJSONL, plugin.TransportGRPC} {
		t.Run(tr, func(t *testing.T) {
			m := roundTrip(t, tr, &plugin.Message{Type: plugin.TypeWrite, N: 7, Deliveries: wire})
			if m.Type != plugin.TypeWrite || m.N != 7 {
				t.Errorf("message %s %d, want write 7", m.Type, m.N)
			}
			out, err := plugin.FromWireDeliveries(m.Deliveries)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				if !bytes.Equal(out[i].Event.Data, in[i].Event.Data) || out[i].Event.ID != in[i].Event.ID || !out[i].Event.Time.Equal(in[i].Event.Time) {
					t.Errorf("delivery %d event %+v, want %+v", i, out[i].Event, in[i].Event)
				}
				if out[i].Attempt != in[i].Attempt || out[i].Replay != in[i].Replay || out[i].Position != in[i].Position {
					t.Errorf("delivery %d %+v, want %+v", i, out[i], in[i])
				}
			}
			if got := fmt.Sprint(out[0].Data); got != "map[n:1.50]" {
				t.Errorf("mapped value %s, want map[n:1.50] (exact)", got)
			}
			rs := []core.Result{
				{Status: core.StatusDelivered},
				{Status: core.StatusRetry, Err: errors.New("busy"), RetryAfter: 3 * time.Second},
				{Status: core.StatusFailed, Err: fmt.Errorf("gone: %w", core.ErrSinkGone), Response: "HTTP/1.1 410 Gone"},
			}
			m = roundTrip(t, tr, &plugin.Message{Type: plugin.TypeResults, N: 7, Results: plugin.ToWireResults(rs)})
			back, err := plugin.FromWireResults(m.Results)
			if err != nil {
				t.Fatal(err)
			}
			if back[0].Status != core.StatusDelivered || back[1].RetryAfter != 3*time.Second || back[1].Err.Error() != "busy" ||
				!errors.Is(back[2].Err, core.ErrSinkGone) || back[2].Response != "HTTP/1.1 410 Gone" || back[2].Status != core.StatusFailed {
				t.Errorf("results %+v, want %+v", back, rs)
			}
			m = roundTrip(t, tr, &plugin.Message{Type: plugin.TypeHello, Protocol: 2, Role: plugin.RoleSink, Capabilities: []string{plugin.CapabilityTarget}})
			if m.Role != plugin.RoleSink || m.Protocol != 2 || len(m.Capabilities) != 1 {
				t.Errorf("hello %+v, want role sink, protocol 2, the target capability", m)
			}
			m = roundTrip(t, tr, &plugin.Message{Type: plugin.TypeTarget, Mode: plugin.TargetReceived, IDs: []string{"a", "b"}})
			if m.Mode != plugin.TargetReceived || fmt.Sprint(m.IDs) != "[a b]" {
				t.Errorf("target %+v, want received [a b]", m)
			}
		})
	}
}

// TestResultStatusUnknown: a result whose status is none of the three is
// an error naming it.
func TestResultStatusUnknown(t *testing.T) {
	_, err := plugin.FromWireResults([]plugin.Result{{Status: "done"}})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`"done"`)) {
		t.Errorf("FromWireResults: %v, want an error naming the status", err)
	}
}
