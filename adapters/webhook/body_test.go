package webhook_test

import (
	"encoding/json"
	"errors"
	"mime"
	"reflect"
	"testing"

	"github.com/tributary/tributary/adapters/webhook"
)

func TestParseBody(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		body    string
		want    any
		wantErr bool
	}{
		{name: "json object", typ: "application/json", body: `{"id":"o-1","total":12.50,"n":9007199254740993,"items":[1,true,null]}`,
			want: map[string]any{"id": "o-1", "total": json.Number("12.50"), "n": json.Number("9007199254740993"), "items": []any{json.Number("1"), true, nil}}},
		{name: "json suffix type", typ: "application/vnd.acme+json", body: `[1]`, want: []any{json.Number("1")}},
		{name: "json scalar", typ: "application/json", body: `"x"`, want: "x"},
		{name: "json trailing garbage", typ: "application/json", body: `{} {}`, wantErr: true},
		{name: "json truncated", typ: "application/json", body: `{"a":`, wantErr: true},
		{name: "empty body", typ: "application/json", body: ``, want: nil},
		{name: "form", typ: "application/x-www-form-urlencoded", body: `a=1&b=x+y&a=2&c=`,
			want: map[string]any{"a": []any{"1", "2"}, "b": "x y", "c": ""}},
		{name: "form bad escape", typ: "application/x-www-form-urlencoded", body: `a=%zz`, wantErr: true},
		{name: "xml convention", typ: "application/xml", body: `<?xml version="1.0"?>
<order id="7" xmlns="urn:acme" xmlns:x="urn:x">
  <customer>Ada</customer>
  <line sku="A"><qty>2</qty></line>
  <line sku="B">3</line>
  <x:note>fragile</x:note>
  <empty/>
  text
</order>`,
			want: map[string]any{"order": map[string]any{
				"@id":      "7",
				"customer": "Ada",
				"line": []any{
					map[string]any{"@sku": "A", "qty": "2"},
					map[string]any{"@sku": "B", "#text": "3"},
				},
				"note":  "fragile",
				"empty": "",
				"#text": "text",
			}}},
		{name: "xml text type", typ: "text/xml", body: `<a>1</a>`, want: map[string]any{"a": "1"}},
		{name: "xml unclosed", typ: "application/xml", body: `<a><b></a>`, wantErr: true},
		{name: "xml two roots", typ: "application/xml", body: `<a/><b/>`, wantErr: true},
		{name: "xml no root", typ: "application/xml", body: ` `, wantErr: true},
		{name: "plain text", typ: "text/plain", body: "hello", want: "hello"},
		{name: "binary", typ: "application/octet-stream", body: "\x00\x01", want: []byte{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.ParseBody(tt.typ, []byte(tt.body))
			if tt.wantErr {
				var be *webhook.BodyError
				if !errors.As(err, &be) {
					t.Fatalf("ParseBody() error = %v, want a *BodyError", err)
				}
				if verr := webhook.ValidateBody(tt.typ, []byte(tt.body)); verr == nil {
					t.Errorf("ValidateBody() = nil, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBody() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseBody() = %#v\nwant %#v", got, tt.want)
			}
			if err := webhook.ValidateBody(tt.typ, []byte(tt.body)); err != nil {
				t.Errorf("ValidateBody() = %v, want nil", err)
			}
		})
	}
}

func TestParseBodyDeepXML(t *testing.T) {
	body := make([]byte, 0, 4000)
	for range 300 {
		body = append(body, "<a>"...)
	}
	if _, err := webhook.ParseBody("application/xml", body); err == nil {
		t.Fatal("ParseBody() of 300 nested elements = nil error, want a depth error")
	}
}

func TestMediaType(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "application/json", want: "application/json"},
		{name: "params", in: "Application/JSON; charset=utf-8", want: "application/json"},
		{name: "empty", in: "", want: ""},
		{name: "garbage", in: ";;", want: ""},
		// The plain form skips mime.ParseMediaType; these check it
		// answers as that would.
		{name: "vendor suffix", in: "application/vnd.github+json", want: "application/vnd.github+json"},
		{name: "upper case", in: "APPLICATION/JSON", want: "application/json"},
		{name: "no subtype", in: "application/", want: ""},
		{name: "no type", in: "/json", want: ""},
		{name: "no slash", in: "json", want: "json"},
		{name: "two slashes", in: "application/json/x", want: ""},
		{name: "space", in: "application/ json", want: ""},
		{name: "trailing space", in: "application/json ", want: "application/json"},
		{name: "bare parameter separator", in: "application/json;", want: "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.MediaType(tt.in); got != tt.want {
				t.Errorf("MediaType(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzMediaType checks MediaType against mime.ParseMediaType, which it
// skips for plain media types.
func FuzzMediaType(f *testing.F) {
	for _, s := range []string{"application/json", "text/plain; charset=utf-8", "a/b/c", "x/", "/y", "Application/Json", "application/json "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := ""
		if s != "" {
			if mt, _, err := mime.ParseMediaType(s); err == nil {
				want = mt
			}
		}
		if got := webhook.MediaType(s); got != want {
			t.Fatalf("MediaType(%q) = %q, mime.ParseMediaType says %q", s, got, want)
		}
	})
}

func FuzzParseBody(f *testing.F) {
	types := []string{"application/json", "application/x-www-form-urlencoded", "application/xml", "text/plain", "application/octet-stream"}
	seeds := []string{`{"a":[1,2,{"b":null}]}`, `a=1&a=2&b=%20`, `<a x="1"><b>t</b><b/></a>`, ``, `[`, `<a>`, `%`}
	for i := range types {
		for _, s := range seeds {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		mt := types[int(typ)%len(types)]
		v, err := webhook.ParseBody(mt, body)
		verr := webhook.ValidateBody(mt, body)
		if (err == nil) != (verr == nil) {
			t.Fatalf("ParseBody error %v but ValidateBody error %v", err, verr)
		}
		if err == nil && webhook.KindOf(mt) == webhook.KindJSON {
			if _, merr := json.Marshal(v); merr != nil {
				t.Fatalf("parsed JSON does not marshal back: %v", merr)
			}
		}
	})
}
