package sqlsink

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// fuzzPaths are the expressions FuzzDataPaths reads: paths that share
// objects, nest, and end where another goes on.
var fuzzPaths = []string{"event.data.a", "event.data.b", "event.data.a.b", "event.data.a.b.c", " event.data.x_1 ", "event.data.c.d"}

// FuzzDataPaths: whenever dataPaths reads an event's data, each column
// gets what its expression gives on the decoded document, and the
// expression does not fail.
func FuzzDataPaths(f *testing.F) {
	for _, doc := range []string{
		`{"a": 1, "b": "x", "c": {"d": [1, 2.50, {"e": null}]}, "x_1": true}`,
		`{"a": {"b": {"c": -0.5e+10}}, "c": {}}`,
		`{"a": {"b": "s"}, "c": {"d": 1}}`,
		`{"a": null, "c": {"d": 1}}`,
		`{"a": "str", "c": {"d": 1}}`,
		`{"a": 1, "a": {"b": {"c": 2}}, "c": {"d": false}, "c": {"d": true}}`,
		`{"a": {"b": "x\u00e9\n\"\\\/"}, "c": {"d": "\ud83d\ude00"}}`,
		`{"a\u0062": 1, "c": {"d": 1}}`,
		`{"a": }`, `{} }`, `{}]`, `[]`, `"x"`, `null`, ``, ` `, `{"a": 01}`, `{"a": 1.}`, `{"a": -}`,
		"\ufeff{\"c\": {\"d\": 1}}",
		"{\"c\": {\"d\": \"\xff\xfe\"}}",
		"{\"c\": {\"d\": \"tab\there\"}}",
		" \n{\"c\" : {\"d\" : 1 } , \"a\" : {\"b\" : {\"c\" : [ ] } } }\r\n ",
		strings.Repeat(`{"a":`, 300) + `1` + strings.Repeat(`}`, 300),
		`{"c": {"d": 12345678901234567890123456789.123456789}, "a": {"b": {"c": {"x": [1, {"y": "z"}]}}}}`,
		// Strings longer than a word, with bytes that end a plain run
		// inside a word.
		`{"b": "abcdefghijklmnopqrstuvwxyz0123456789", "c": {"d": "é-ü-ñ-日本語-text"}}`,
		`{"b": "abcdefgh\"ijklmnop", "c": {"d": "abcdefg\\hijklmnopq"}}`,
		"{\"b\": \"abcdefghijklm\x1fnop\", \"c\": {\"d\": 1}}",
		"{\"b\": \"abcdefghijklmnop\x7fqrstuvw\", \"c\": {\"d\": \"abcdefghijklmnopqrs\xff\"}}",
		`{"b": "abcdefghijklmnopqrstuvw`,
	} {
		f.Add(doc, "application/json")
	}
	f.Add(`{"c": {"d": 1}}`, "text/plain")
	f.Add(`{"c": {"d": 1}}`, "")
	progs := make([]*rules.EventProgram, len(fuzzPaths))
	for i, p := range fuzzPaths {
		prog, err := rules.CompileEvent("columns", p)
		if err != nil {
			f.Fatal(err)
		}
		progs[i] = prog
	}
	paths := compileDataPaths(fuzzPaths, "")
	if paths == nil || len(paths.cols) != len(fuzzPaths) {
		f.Fatalf("the plain paths %q are not all read as paths", fuzzPaths)
	}
	f.Fuzz(func(t *testing.T, doc, contentType string) {
		ev := &core.Event{ID: "ev-1", Type: "t", Source: "/fuzz", DataContentType: contentType, Data: []byte(doc)}
		out := make([]any, len(fuzzPaths))
		if !paths.read(ev, out) {
			return
		}
		env := rules.NewEventEnv(ev, "orders_table")
		for i, prog := range progs {
			want, err := prog.EvalEnv(env)
			if err != nil {
				t.Fatalf("%s of %q: read %#v where the expression fails: %v", fuzzPaths[i], doc, out[i], err)
			}
			if !reflect.DeepEqual(out[i], want) {
				t.Fatalf("%s of %q: read %#v, the expression gives %#v", fuzzPaths[i], doc, out[i], want)
			}
		}
	})
}

// TestDataPathsApply: the paths are read only when every expression
// reading the data is a plain path.
func TestDataPathsApply(t *testing.T) {
	tests := []struct {
		name       string
		exprs      []string
		deleteWhen string
		want       []int
	}{
		{name: "paths and the id", exprs: []string{"", "event.data.order_id", "event.data.customer.id"}, want: []int{1, 2}},
		{name: "paths beside attributes", exprs: []string{"event.data.total", "event.time", "event.type"}, want: []int{0}},
		{name: "an expression over the data", exprs: []string{"event.data.total", `event.data.a + "x"`}},
		{name: "the whole data", exprs: []string{"event.data.total", "event.data"}},
		{name: "an index", exprs: []string{`event.data["total"]`}},
		{name: "delete_when reads the data", exprs: []string{"event.data.total"}, deleteWhen: "event.data.deleted"},
		{name: "delete_when reads the type", exprs: []string{"event.data.total"}, deleteWhen: `event.type == "x.deleted"`, want: []int{0}},
		{name: "no path", exprs: []string{"event.time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := compileDataPaths(tt.exprs, tt.deleteWhen)
			var got []int
			if p != nil {
				got = p.cols
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("columns read as paths %v, want %v", got, tt.want)
			}
		})
	}
}
