package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
	"github.com/tributary/tributary/plugin/pluginpb"
)

// Protobuf field builders, for batches no generated code writes.
func lenField(num protowire.Number, parts ...[]byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, bytes.Join(parts, nil))
}

func varintField(num protowire.Number, u uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), u)
}

func strField(num protowire.Number, s string) []byte { return lenField(num, []byte(s)) }

// Fields of pluginpb messages, by name.
var (
	pos      = lenField(8, varintField(1, 1), strField(2, "p"))
	str      = func(s string) []byte { return strField(5, s) }
	entry    = func(k string, v ...[]byte) []byte { return lenField(1, strField(1, k), lenField(2, v...)) }
	list     = func(vs ...[]byte) []byte { return lenField(9, vs...) }
	listElem = func(v ...[]byte) []byte { return lenField(1, v...) }
	tstamp   = func(num protowire.Number, sec, ns uint64) []byte {
		return lenField(num, varintField(1, sec), varintField(2, ns))
	}
	change = func(fields ...[]byte) []byte { return lenField(1, fields...) }
)

// nested returns a change whose payload holds n lists, one in the other,
// around leaf: 3 + 2n nested messages with the batch, and leaf's own.
func nested(n int, leaf []byte) []byte {
	v := leaf
	for range n {
		v = list(listElem(v))
	}
	return change(lenField(5, v), pos)
}

func TestGRPCBatchDecodesAsProtoUnmarshal(t *testing.T) {
	generated, err := proto.Marshal(&pluginpb.Batch{Changes: []*pluginpb.Change{{
		Op:       "create",
		After:    &pluginpb.Map{Fields: map[string]*pluginpb.Value{"n": {Kind: &pluginpb.Value_IntValue{IntValue: -3}}, "none": {}}},
		Payload:  &pluginpb.Value{Kind: &pluginpb.Value_DoubleValue{DoubleValue: math.NaN()}},
		Source:   &pluginpb.SourceInfo{System: "s", CommitTime: &pluginpb.Timestamp{Seconds: 1, Nanos: 2}},
		Position: &pluginpb.Position{Version: 1, Data: []byte("p")},
		Raw:      []byte("raw"),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		batch []byte
	}{
		{name: "generated", batch: generated},
		{name: "empty", batch: nil},
		{name: "map given twice merges", batch: change(lenField(4, entry("a", str("1"))), lenField(4, entry("b", str("2"))), pos)},
		{name: "map key given twice: the last entry wins", batch: change(lenField(4, entry("a", str("1")), entry("a", varintField(2, 1))), pos)},
		{name: "entry value given twice merges", batch: change(lenField(4, lenField(1, strField(1, "a"), lenField(2, list(listElem(str("x")))), lenField(2, list(listElem(str("y")))))), pos)},
		{name: "payload lists given twice append", batch: change(lenField(5, list(listElem(str("x")))), lenField(5, list(listElem(str("y")))), pos)},
		{name: "payload list then int", batch: change(lenField(5, list(listElem(str("x"))), varintField(3, 4)), pos)},
		{name: "payload maps given twice merge", batch: change(lenField(5, lenField(10, entry("a", str("1")))), lenField(5, lenField(10, entry("b", str("2")))), pos)},
		{name: "payload times given twice merge", batch: change(lenField(5, lenField(7, varintField(1, 5))), lenField(5, lenField(7, varintField(2, uint64(1<<64-1)))), pos)},
		{name: "commit times given twice merge", batch: change(lenField(7, tstamp(5, 5, 0)), lenField(7, lenField(5, varintField(2, uint64(1<<64-1)))), pos)},
		{name: "source given twice merges", batch: change(lenField(7, strField(3, "t")), lenField(7, strField(1, "s")), pos)},
		{name: "position given twice merges", batch: change(lenField(8, varintField(1, 3)), lenField(8, strField(2, "d")))},
		{name: "empty data clears the position", batch: change(pos, lenField(8, strField(2, "")))},
		{name: "empty raw", batch: change(strField(9, ""), pos)},
		{name: "empty bytes value", batch: change(lenField(5, lenField(6)), pos)},
		{name: "null of the wrong wire type is unknown", batch: change(lenField(5, str("x"), strField(1, "")), pos)},
		{name: "null set to false is null", batch: change(lenField(5, str("x"), varintField(1, 0)), pos)},
		{name: "op of the wrong wire type is unknown", batch: change(varintField(1, 1), pos)},
		{name: "invalid UTF-8 in op", batch: change(strField(1, "\xff"), pos)},
		{name: "invalid UTF-8 in a key", batch: change(lenField(2, entry("\xff", str("x"))), pos)},
		{name: "invalid UTF-8 in a string", batch: change(lenField(2, entry("k", str("\xff"))), pos)},
		{name: "invalid UTF-8 in a number", batch: change(lenField(2, entry("k", strField(8, "\xff"))), pos)},
		{name: "invalid UTF-8 in a table", batch: change(lenField(7, strField(3, "\xff")), pos)},
		{name: "invalid UTF-8 in a transaction", batch: change(lenField(7, strField(6, "\xff")), pos)},
		{name: "field number beyond the largest", batch: append(change(pos), varintField(1<<29, 1)...)},
		{name: "field number beyond the largest in a map entry", batch: change(lenField(2, lenField(1, strField(1, "k"), varintField(1<<29, 1))), pos)},
		{name: "unknown group", batch: append(change(pos), protowire.AppendTag(protowire.AppendTag(nil, 20, protowire.StartGroupType), 20, protowire.EndGroupType)...)},
		{name: "unterminated group", batch: append(change(pos), protowire.AppendTag(nil, 20, protowire.StartGroupType)...)},
		{name: "end of a group outside one", batch: append(change(pos), protowire.AppendTag(nil, 20, protowire.EndGroupType)...)},
		{name: "wrong wire type", batch: append(change(pos), 0x0e)},
		{name: "truncated", batch: change(pos)[:4]},
		{name: "no position", batch: change(strField(1, "create"))},
		{name: "nested to the recursion limit", batch: nested((protowire.DefaultRecursionLimit-4)/2, lenField(7))},
		{name: "nested beyond the recursion limit", batch: nested((protowire.DefaultRecursionLimit-2)/2, varintField(2, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkBatch(t, tt.batch)
		})
	}
}

// FuzzGRPCBatch checks that the changes of a changes message on the gRPC
// transport decode as the generated pluginpb code decodes them with
// proto.Unmarshal: the same batches accepted, the same changes. Its seeds
// in testdata/fuzz are the cases of TestGRPCBatchDecodesAsProtoUnmarshal.
func FuzzGRPCBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		checkBatch(t, b)
	})
}

// checkBatch fails t unless batch b is received as proto.Unmarshal and
// fromPB read it.
func checkBatch(t *testing.T, b []byte) {
	t.Helper()
	var batch pluginpb.Batch
	want, wantErr := []core.Change(nil), proto.Unmarshal(b, &batch)
	if wantErr == nil {
		want, wantErr = fromPB(&batch)
	}
	p := newPipe(t)
	p.ch <- &pluginpb.Message{Type: plugin.TypeChanges, Batch: b}
	m, err := plugin.NewGRPCConn(p).Recv()
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("Recv(%x) error = %v, proto.Unmarshal error = %v", b, err, wantErr)
	}
	if err != nil {
		return
	}
	got := plugin.FromWire(m.Changes)
	if len(got) != len(want) {
		t.Fatalf("Recv(%x) = %d changes, proto.Unmarshal %d", b, len(got), len(want))
	}
	for i := range got {
		if g, w := comparable(got[i]), comparable(want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("Recv(%x) change %d = %#v\nwant %#v", b, i, g, w)
		}
	}
}

// fromPB is what a change decoded by the generated code means, as
// plugin/pluginpb/plugin.proto says.
func fromPB(b *pluginpb.Batch) ([]core.Change, error) {
	out := make([]core.Change, len(b.Changes))
	for i, c := range b.Changes {
		ch := core.Change{
			Op:     core.Op(c.Op),
			Key:    mapFromPB(c.Key),
			Before: mapFromPB(c.Before),
			After:  mapFromPB(c.After),
			Meta:   mapFromPB(c.Meta),
			Raw:    c.Raw,
		}
		if c.Payload != nil {
			ch.Payload = valueFromPB(c.Payload)
		}
		if s := c.Source; s != nil {
			ch.Source = core.SourceInfo{System: s.System, Schema: s.Schema, Table: s.Table, Endpoint: s.Endpoint, TxID: s.TxId}
			if s.CommitTime != nil {
				ch.Source.CommitTime = timeFromPB(s.CommitTime)
			}
		}
		if c.Position != nil {
			ch.Position = core.Position{Version: c.Position.Version, Data: c.Position.Data}
		}
		if ch.Position.IsZero() {
			return nil, errors.New("change without a position")
		}
		out[i] = ch
	}
	return out, nil
}

func mapFromPB(m *pluginpb.Map) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m.Fields))
	for k, v := range m.Fields {
		out[k] = valueFromPB(v)
	}
	return out
}

func timeFromPB(t *pluginpb.Timestamp) time.Time {
	return time.Unix(t.Seconds, int64(t.Nanos)).UTC()
}

func valueFromPB(v *pluginpb.Value) any {
	switch x := v.Kind.(type) {
	case *pluginpb.Value_BoolValue:
		return x.BoolValue
	case *pluginpb.Value_IntValue:
		return x.IntValue
	case *pluginpb.Value_DoubleValue:
		return x.DoubleValue
	case *pluginpb.Value_StringValue:
		return x.StringValue
	case *pluginpb.Value_BytesValue:
		return x.BytesValue
	case *pluginpb.Value_TimeValue:
		return timeFromPB(x.TimeValue)
	case *pluginpb.Value_NumberValue:
		return json.Number(x.NumberValue)
	case *pluginpb.Value_ListValue:
		list := make([]any, len(x.ListValue.Values))
		for i, e := range x.ListValue.Values {
			list[i] = valueFromPB(e)
		}
		return list
	case *pluginpb.Value_MapValue:
		return mapFromPB(x.MapValue)
	}
	return nil // no kind, or null_value
}

// floatBits stands for a float64, so that NaNs compare equal.
type floatBits uint64

// comparable returns c with its values' floats replaced by their bits.
func comparable(c core.Change) core.Change {
	for _, m := range []*map[string]any{&c.Key, &c.Before, &c.After, &c.Meta} {
		if *m != nil {
			*m = floatsAsBits(*m).(map[string]any)
		}
	}
	c.Payload = floatsAsBits(c.Payload)
	return c
}

func floatsAsBits(v any) any {
	switch x := v.(type) {
	case float64:
		return floatBits(math.Float64bits(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = floatsAsBits(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = floatsAsBits(e)
		}
		return out
	}
	return v
}
