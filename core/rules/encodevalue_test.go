package rules

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/tributary/tributary/core/catalog"
)

// valueFrom builds a value for FuzzAppendJSONValueAgrees: doc decoded as
// the CDC connectors and webhooks give values (numbers as json.Number),
// then, steered by the bytes of mix, some of its members swapped for
// values Normalize changes or refuses (times, bytes, other integer and
// float types, NaN, nil maps and lists, numbers that are not JSON) and
// for lists nested deeper than jsonValue allows.
func valueFrom(doc string, mix []byte) any {
	d := json.NewDecoder(bytes.NewReader([]byte(doc)))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		v = doc
	}
	odd := []any{
		time.Date(2026, 12, 7, 1, 2, 3, 4000, time.UTC), []byte("\x00\xff"), int32(-7), uint64(math.MaxUint64),
		float32(0.1), math.NaN(), math.Inf(-1), map[string]any(nil), []any(nil), json.Number("1e"), json.Number("12.50"),
		int8(3), uint(9), 1.5, int64(math.MinInt64), 7, map[string]any{}, []any{}, json.RawMessage(`{"a":1}`),
	}
	i := 0
	next := func() (byte, bool) {
		if i >= len(mix) {
			return 0, false
		}
		i++
		return mix[i-1], true
	}
	var walk func(v any, depth int) any
	walk = func(v any, depth int) any {
		c, ok := next()
		if ok && c%5 == 0 {
			return odd[int(c/5)%len(odd)]
		}
		if ok && c == 1 {
			deep := v
			for range 100 {
				deep = []any{deep}
			}
			return deep
		}
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(e, depth+1)
			}
		case []any:
			for j, e := range x {
				x[j] = walk(e, depth+1)
			}
		}
		return v
	}
	return walk(v, 0)
}

// FuzzAppendJSONValueAgrees checks appendJSONValue, which checks and
// encodes a rule's data in one walk (and keyOrder, which encodes an object
// in the order of the keys of the one before), against the two walks
// they replace:
// jsonValue deciding whether the value is already normalized, then
// appendJSON encoding it (the same bytes, or a failure from both), and,
// when it is not, the value normalized and then encoded, as evalData
// does (the same bytes as encode gives of n.eval's value).
func FuzzAppendJSONValueAgrees(f *testing.F) {
	for _, s := range []struct {
		doc string
		mix []byte
	}{
		{`{"id":1000042,"name":"order 1","total":12.50,"created":"2026-12-07T00:05:05.123456"}`, nil},
		{`{"a":[1,"x",null,true,{"b":2.50}],"c":{"d":[]}}`, []byte{2, 3, 5, 2, 10}},
		{`{"a":{"b":{"c":[1,2]}}}`, []byte{2, 2, 1}},
		{`[1,2,{"x":"é😀 <&>"}]`, []byte{2, 15, 2, 20, 25}},
		{`"text"`, []byte{30}},
		{`{"k":1,"l":2}`, []byte{2, 35, 40}},
		{`{"n":1,"m":[{},{}]}`, []byte{2, 45, 2, 50, 55, 60}},
		{`null`, nil},
	} {
		f.Add(s.doc, s.mix)
	}
	f.Fuzz(func(t *testing.T, doc string, mix []byte) {
		v := valueFrom(doc, mix)
		got, ok, err := appendJSONValue(nil, v, 0)
		// A state's keyOrder, remembering the keys of the row before
		// (other keys of the same count, then v's own), encodes alike.
		var o keyOrder
		if m, isMap := v.(map[string]any); isMap {
			other := map[string]any{}
			for k := range m {
				other[k+"x"] = k
			}
			o.appendJSON(nil, other)
		}
		for range 2 {
			again, aok, aerr := o.appendJSON(nil, v)
			if aok != ok || (aerr == nil) != (err == nil) || ok && err == nil && !bytes.Equal(again, got) {
				t.Fatalf("%#v: keyOrder gives %s (ok %v, %v), appendJSONValue %s (ok %v, %v)", v, again, aok, aerr, got, ok, err)
			}
		}
		if err != nil {
			ok = jsonValue(v, 0)
		}
		if ok != jsonValue(v, 0) {
			t.Fatalf("%#v: appendJSONValue ok %v, jsonValue %v", v, ok, !ok)
		}
		if !ok {
			return
		}
		want, werr := appendJSON(nil, v)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%#v: appendJSONValue error %v, appendJSON error %v", v, err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%#v:\nappendJSONValue %s\nappendJSON      %s", v, got, want)
		}
		if n, nerr := catalog.Normalize(v); nerr == nil {
			if again, aerr := appendJSON(nil, n); (aerr == nil) != (err == nil) || err == nil && !bytes.Equal(again, got) {
				t.Fatalf("%#v: normalized first, encoded %s (%v); appendJSONValue %s (%v)", v, again, aerr, got, err)
			}
		}
	})
}
