package rules_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
)

// wholeRowSet is a rule whose data is the whole row read, as the CDC
// catch-up benchmarks map it: encoded from the change's own map.
func wholeRowSet(t testing.TB, cat *catalog.Catalog, partitionKey string) *rules.Set {
	t.Helper()
	set, err := rules.Compile("c", []core.Rule{{Name: "r", Type: "com.acme.row.changed", PartitionKey: partitionKey, Data: "after"}}, cat)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// encodingJSON is what encoding/json writes of v without HTML escaping,
// as the rules engine writes event data.
func encodingJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// FuzzWholeRowDataAgreesWithEncodingJSON checks the rules engine's data
// encoder, on a row read whole (data: after) and so neither copied nor
// normalized first, against encoding/json: the same bytes (keys sorted,
// strings escaped, numbers written alike), or a failure from both.
func FuzzWholeRowDataAgreesWithEncodingJSON(f *testing.F) {
	f.Add(`{"a":[1,"x",null,true,{"b":2.50}]}`, 1.5, int64(-7), "order <1> & \u2028", "k")
	f.Add(`"\ud800"`, 1e21, int64(math.MaxInt64), "\xff\xfe", "\x00")
	f.Add(`[]`, 1e-7, int64(math.MinInt64), "", "")
	f.Add(`not json`, math.Inf(1), int64(0), "é😀", "id")
	f.Add(`{"":{}}`, -0.0, int64(1), `"\`, "\u2029")
	set := wholeRowSet(f, nil, "")
	f.Fuzz(func(t *testing.T, doc string, fl float64, n int64, s, key string) {
		row := map[string]any{"f": fl, "n": n, "s": s, key: s, "doc": doc}
		d := json.NewDecoder(bytes.NewReader([]byte(doc)))
		d.UseNumber()
		var v any
		if d.Decode(&v) == nil && !d.More() {
			row["doc"] = v
		}
		want, werr := encodingJSON(row)
		res := set.Apply(&core.Change{Op: core.OpCreate, After: row})
		if len(res) != 1 {
			t.Fatalf("Apply gave %d results", len(res))
		}
		if werr != nil || res[0].Err != nil {
			if (werr == nil) != (res[0].Err == nil) {
				t.Fatalf("row %#v: encoding/json error %v, rules error %v", row, werr, res[0].Err)
			}
			return
		}
		if got := res[0].Event.Data; !bytes.Equal(got, want) {
			t.Fatalf("row %#v:\nrules         %s\nencoding/json %s", row, got, want)
		}
	})
}

// TestResultDataSharesNoMapWithChange checks that the data a failed rule
// carries out (for the dead-letter record) is a copy when the rule's data
// is a map of the change read whole: a later change to the change's map
// does not show in it.
func TestResultDataSharesNoMapWithChange(t *testing.T) {
	cat, err := catalog.New([]core.EventType{{
		Type: "com.acme.row.changed", Version: "1",
		Schema: map[string]any{"type": "object", "properties": map[string]any{"id": map[string]any{"type": "string"}}},
	}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		cat          *catalog.Catalog
		partitionKey string
	}{
		{name: "schema violation", cat: cat},
		{name: "partition key fails after the data", partitionKey: `string(after.lines[5])`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := wholeRowSet(t, tc.cat, tc.partitionKey)
			ch := &core.Change{Op: core.OpCreate, After: map[string]any{"id": int64(7), "lines": []any{"a"}}}
			res := set.Apply(ch)
			if len(res) != 1 || res[0].Err == nil {
				t.Fatalf("Apply = %+v, want one failed result", res)
			}
			want := map[string]any{"id": int64(7), "lines": []any{"a"}}
			if !reflect.DeepEqual(res[0].Data, want) {
				t.Fatalf("Data = %#v, want %#v", res[0].Data, want)
			}
			ch.After["id"] = int64(8)
			ch.After["lines"].([]any)[0] = "b"
			if !reflect.DeepEqual(res[0].Data, want) {
				t.Errorf("Data = %#v after the change's map changed, want %#v", res[0].Data, want)
			}
		})
	}
}
