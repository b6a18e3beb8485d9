package plugin_test

import (
	"encoding/json"
	"io"
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
	"github.com/tributary/tributary/plugin/pluginpb"
)

// pipe is one direction of a Session stream: what Send sends, Recv
// receives, after a round through the protobuf encoding as on the wire.
type pipe struct {
	t  testing.TB
	ch chan *pluginpb.Message
	// last holds the encoding of the last message sent.
	last []byte
}

func newPipe(t testing.TB) *pipe { return &pipe{t: t, ch: make(chan *pluginpb.Message, 1)} }

func (p *pipe) Send(m *pluginpb.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	p.last = b
	var out pluginpb.Message
	if err := proto.Unmarshal(b, &out); err != nil {
		return err
	}
	p.ch <- &out
	return nil
}

func (p *pipe) Recv() (*pluginpb.Message, error) {
	m, ok := <-p.ch
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

type point struct {
	X int     `json:"x"`
	Y float64 `json:"y"`
}

func TestGRPCChangesKeepValues(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	at := time.Date(2024, 5, 1, 10, 0, 0, 123456789, berlin)
	tests := []struct {
		name string
		in   any
		want any
	}{
		{name: "nil", in: nil, want: nil},
		{name: "true", in: true, want: true},
		{name: "false", in: false, want: false},
		{name: "int64", in: int64(-42), want: int64(-42)},
		{name: "int64 max", in: int64(math.MaxInt64), want: int64(math.MaxInt64)},
		{name: "int", in: 7, want: int64(7)},
		{name: "int32", in: int32(-7), want: int64(-7)},
		{name: "uint8", in: uint8(200), want: int64(200)},
		{name: "uint64 beyond int64", in: uint64(math.MaxUint64), want: json.Number("18446744073709551615")},
		{name: "float64", in: 0.1, want: 0.1},
		{name: "float32", in: float32(1.5), want: 1.5},
		{name: "number", in: json.Number("129.90"), want: json.Number("129.90")},
		{name: "long number", in: json.Number("123456789012345678901234567890.000001"), want: json.Number("123456789012345678901234567890.000001")},
		{name: "string", in: "grüße\n\"x\"", want: "grüße\n\"x\""},
		{name: "empty string", in: "", want: ""},
		{name: "bytes", in: []byte{0, 1, 255}, want: []byte{0, 1, 255}},
		{name: "time keeps its instant, in UTC", in: at, want: at.UTC()},
		{name: "time before 1970", in: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), want: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "list", in: []any{int64(1), "a", nil, []any{}}, want: []any{int64(1), "a", nil, []any{}}},
		{name: "map", in: map[string]any{"a": map[string]any{}, "b": []any{true}}, want: map[string]any{"a": map[string]any{}, "b": []any{true}}},
		{name: "struct travels as its JSON form", in: point{X: 1, Y: 2.5}, want: map[string]any{"x": json.Number("1"), "y": json.Number("2.5")}},
		{name: "typed slice", in: []string{"a", "b"}, want: []any{"a", "b"}},
		{name: "nil pointer", in: (*point)(nil), want: nil},
	}
	var in []core.Change
	for i, tt := range tests {
		in = append(in, core.Change{
			Op:       core.OpUpdate,
			Key:      map[string]any{"id": tt.name},
			After:    map[string]any{"v": tt.in},
			Position: core.Position{Version: 3, Data: []byte(strconv.Itoa(i))},
		})
	}
	full := core.Change{
		Op: core.OpMessage, Payload: []any{"body", int64(1)}, Meta: map[string]any{},
		Before:   map[string]any{"k": nil},
		Source:   core.SourceInfo{System: "s", Schema: "sc", Table: "t", Endpoint: "/e", CommitTime: at, TxID: "tx"},
		Position: core.Position{Version: 1, Data: []byte{0}}, Raw: []byte("raw record"),
	}
	in = append(in, full)

	p := newPipe(t)
	send, recv := plugin.NewGRPCConn(p), plugin.NewGRPCConn(p)
	if err := send.Send(&plugin.Message{Type: plugin.TypeChanges, Changes: plugin.ToWire(in)}); err != nil {
		t.Fatal(err)
	}
	m, err := recv.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := plugin.FromWire(m.Changes)
	if len(got) != len(in) {
		t.Fatalf("got %d changes, want %d", len(got), len(in))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := got[i]
			if v := c.After["v"]; !reflect.DeepEqual(v, tt.want) {
				t.Errorf("value = %#v (%T), want %#v (%T)", v, v, tt.want, tt.want)
			}
			if c.Key["id"] != tt.name || c.Op != core.OpUpdate || c.Position.Version != 3 || string(c.Position.Data) != strconv.Itoa(i) {
				t.Errorf("change = %+v", c)
			}
			if c.Before != nil || c.Meta != nil || c.Payload != nil || c.Raw != nil || c.Source != (core.SourceInfo{}) {
				t.Errorf("absent fields arrived: %+v", c)
			}
		})
	}
	wantFull := full
	wantFull.Source.CommitTime = at.UTC()
	if g := got[len(got)-1]; !reflect.DeepEqual(g, wantFull) {
		t.Errorf("full change = %+v, want %+v", g, wantFull)
	}

	// The batch is an encoded pluginpb.Batch, for plugins in other
	// languages.
	var pm pluginpb.Message
	if err := proto.Unmarshal(p.last, &pm); err != nil {
		t.Fatal(err)
	}
	var batch pluginpb.Batch
	if err := proto.Unmarshal(pm.Batch, &batch); err != nil {
		t.Fatalf("batch is not a pluginpb.Batch: %v", err)
	}
	last := batch.Changes[len(batch.Changes)-1]
	if last.Source.GetCommitTime().GetSeconds() != at.Unix() || string(last.Raw) != "raw record" || last.Op != "message" {
		t.Errorf("last change as pluginpb.Change = %v", last)
	}
	if v := batch.Changes[9].After.Fields["v"].GetDoubleValue(); v != 0.1 {
		t.Errorf("float64 as pluginpb.Value = %v", batch.Changes[9].After.Fields["v"])
	}
}

// A batch written by another protobuf library arrives the same.
func TestGRPCChangesFromGeneratedBatch(t *testing.T) {
	batch := &pluginpb.Batch{Changes: []*pluginpb.Change{{
		Op: "create",
		After: &pluginpb.Map{Fields: map[string]*pluginpb.Value{
			"n":     {Kind: &pluginpb.Value_IntValue{IntValue: -3}},
			"total": {Kind: &pluginpb.Value_NumberValue{NumberValue: "1.10"}},
			"tags":  {Kind: &pluginpb.Value_ListValue{ListValue: &pluginpb.List{Values: []*pluginpb.Value{{Kind: &pluginpb.Value_StringValue{StringValue: "x"}}}}}},
			"none":  {},
			"at":    {Kind: &pluginpb.Value_TimeValue{TimeValue: &pluginpb.Timestamp{Seconds: 1, Nanos: 2}}},
		}},
		Position: &pluginpb.Position{Version: 1, Data: []byte("p")},
	}}}
	b, err := proto.Marshal(batch)
	if err != nil {
		t.Fatal(err)
	}
	p := newPipe(t)
	if err := p.Send(&pluginpb.Message{Type: plugin.TypeChanges, Batch: b}); err != nil {
		t.Fatal(err)
	}
	m, err := plugin.NewGRPCConn(p).Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := []core.Change{{
		Op: core.OpCreate,
		After: map[string]any{
			"n": int64(-3), "total": json.Number("1.10"), "tags": []any{"x"}, "none": nil,
			"at": time.Unix(1, 2).UTC(),
		},
		Position: core.Position{Version: 1, Data: []byte("p")},
	}}
	if got := plugin.FromWire(m.Changes); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// Strings that are not UTF-8 arrive as over JSON Lines, each stray byte
// as U+FFFD, in a batch the generated code reads.
func TestGRPCChangesSendStringsAsUTF8(t *testing.T) {
	in := core.Change{
		Op:       core.Op("up\xffdate"),
		Key:      map[string]any{"id\xff": "a\xff\xfeb"},
		After:    map[string]any{"n": json.Number("1\xff"), "ok": "grüße"},
		Source:   core.SourceInfo{Table: "t\xff", TxID: "\xc3"},
		Position: core.Position{Version: 1, Data: []byte{0xff}},
		Raw:      []byte{0xff},
	}
	want := core.Change{
		Op:       core.Op("up\uFFFDdate"),
		Key:      map[string]any{"id\uFFFD": "a\uFFFD\uFFFDb"},
		After:    map[string]any{"n": json.Number("1\uFFFD"), "ok": "grüße"},
		Source:   core.SourceInfo{Table: "t\uFFFD", TxID: "\uFFFD"},
		Position: core.Position{Version: 1, Data: []byte{0xff}},
		Raw:      []byte{0xff},
	}
	p := newPipe(t)
	if err := plugin.NewGRPCConn(p).Send(&plugin.Message{Type: plugin.TypeChanges, Changes: plugin.ToWire([]core.Change{in})}); err != nil {
		t.Fatal(err)
	}
	m, err := plugin.NewGRPCConn(p).Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := plugin.FromWire(m.Changes); !reflect.DeepEqual(got, []core.Change{want}) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	var pm pluginpb.Message
	if err := proto.Unmarshal(p.last, &pm); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(pm.Batch, &pluginpb.Batch{}); err != nil {
		t.Errorf("batch is not a pluginpb.Batch: %v", err)
	}
}

func TestGRPCChangesRejectMalformed(t *testing.T) {
	tests := []struct {
		name  string
		batch []byte
	}{
		{name: "truncated", batch: []byte{0x0a, 0x10, 0x0a}},
		{name: "change without position", batch: []byte{0x0a, 0x08, 0x0a, 0x06, 'c', 'r', 'e', 'a', 't', 'e'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipe(t)
			p.ch <- &pluginpb.Message{Type: plugin.TypeChanges, Batch: tt.batch}
			if _, err := plugin.NewGRPCConn(p).Recv(); err == nil {
				t.Error("Recv succeeded, want an error")
			}
		})
	}
}

func BenchmarkGRPCChanges(b *testing.B) {
	chs := make([]core.Change, 1000)
	for i := range chs {
		chs[i] = core.Change{
			Op: core.OpCreate,
			After: map[string]any{
				"id": int64(i), "customer_id": int64(i % 977), "status": "accepted", "currency": "EUR",
				"total": json.Number("129.90"), "items": int64(3), "channel": "web", "country": "DE",
				"created_at": "2023-11-14T22:13:20Z", "note": "leave at the door",
			},
			Source:   core.SourceInfo{System: "bench", Table: "orders"},
			Position: core.Position{Version: 1, Data: []byte(strconv.Itoa(i + 1))},
		}
	}
	wire := plugin.ToWire(chs)
	p := newPipe(b)
	send, recv := plugin.NewGRPCConn(p), plugin.NewGRPCConn(p)
	b.ReportAllocs()
	for b.Loop() {
		if err := send.Send(&plugin.Message{Type: plugin.TypeChanges, Changes: wire}); err != nil {
			b.Fatal(err)
		}
		if _, err := recv.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(chs))/b.Elapsed().Seconds(), "changes/s")
}
