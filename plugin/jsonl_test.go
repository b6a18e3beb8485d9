package plugin_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/tributary/tributary/plugin"
)

// Changes messages decode over JSON Lines exactly as encoding/json with
// UseNumber decodes them, whatever their shape.
func TestJSONChangesDecodeAsEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{name: "typical", line: `{"type":"changes","changes":[{"op":"create","key":{"id":"SO-1"},"after":{"id":"SO-1","total":129.90,"n":-3,"e":1e-7,"ok":true,"no":false,"none":null,"tags":["a",1,{"x":[]}],"m":{}},"source":{"system":"legacy","table":"orders","commit_time":"2024-05-01T10:00:00.123Z"},"position":{"v":1,"d":"MTI="},"raw":"U08tMSwxMjkuOTA="}]}`},
		{name: "several changes and white space", line: ` { "type" : "changes" , "changes" : [ {"op":"update","before":{"a":1},"after":{"a":2},"position":{"v":2,"d":"AA=="}} , {"op":"delete","key":{"a":1},"position":{"d":"AQ=="}} ] } `},
		{name: "escapes and unicode", line: `{"type":"changes","changes":[{"op":"message","payload":{"s":"a\"b\\c\n\u00e9\ud83d\ude00","ü":"grüße"},"meta":{"k\"ey":"v"},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "invalid UTF-8", line: "{\"type\":\"changes\",\"changes\":[{\"op\":\"create\",\"after\":{\"s\":\"a\xffb\"},\"position\":{\"v\":1,\"d\":\"AA==\"}}]}"},
		{name: "nulls", line: `{"type":"changes","changes":[{"op":null,"key":null,"before":null,"after":null,"payload":null,"meta":null,"source":null,"position":{"v":null,"d":null},"raw":null}]}`},
		{name: "source nulls", line: `{"type":"changes","changes":[{"op":"read","source":{"system":null,"commit_time":null,"tx_id":"7"},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "payload scalar", line: `{"type":"changes","changes":[{"op":"message","payload":-0.5e+3,"position":{"v":1,"d":"AA=="}}]}`},
		{name: "empty changes", line: `{"type":"changes","changes":[]}`},
		{name: "no changes", line: `{"type":"changes"}`},
		{name: "unknown field", line: `{"type":"changes","changes":[{"op":"create","later":{"x":1},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "field in other case", line: `{"type":"changes","changes":[{"OP":"create","position":{"v":1,"d":"AA=="}}]}`},
		{name: "other message", line: `{"type":"credit","n":5}`},
		{name: "type not first", line: `{"changes":[{"op":"create","position":{"v":1,"d":"AA=="}}],"type":"changes"}`},
		{name: "version as float", line: `{"type":"changes","changes":[{"op":"create","position":{"v":1.5,"d":"AA=="}}]}`},
		{name: "bad base64", line: `{"type":"changes","changes":[{"op":"create","position":{"v":1,"d":"A"}}]}`},
		{name: "bad time", line: `{"type":"changes","changes":[{"op":"create","source":{"commit_time":"yesterday"},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "bad number", line: `{"type":"changes","changes":[{"op":"create","after":{"n":01},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "truncated", line: `{"type":"changes","changes":[{"op":"create","after":{"n":1`},
		{name: "trailing garbage", line: `{"type":"changes","changes":[]} x`},
		{name: "op of the wrong type", line: `{"type":"changes","changes":[{"op":3,"position":{"v":1,"d":"AA=="}}]}`},
		{name: "duplicate map field merges", line: `{"type":"changes","changes":[{"op":"update","after":{"a":"1"},"after":{"b":"2"},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "duplicate map field set to null", line: `{"type":"changes","changes":[{"op":"update","after":{"a":"1"},"after":null,"position":{"v":1,"d":"AA=="}}]}`},
		{name: "duplicate source merges", line: `{"type":"changes","changes":[{"op":"read","source":{"table":"t"},"source":{"system":"s"},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "duplicate position merges", line: `{"type":"changes","changes":[{"op":"read","position":{"v":1,"d":"AA=="},"position":{"d":"AQ=="}}]}`},
		{name: "duplicate version", line: `{"type":"changes","changes":[{"op":"read","position":{"v":1,"v":2,"d":"AA=="}}]}`},
		{name: "duplicate changes", line: `{"type":"changes","changes":[{"op":"read","after":{"a":1},"position":{"v":1,"d":"AA=="}}],"changes":[{"after":{"b":2}}]}`},
		{name: "duplicate type", line: `{"type":"changes","type":"credit","n":1}`},
		{name: "duplicate key inside a map", line: `{"type":"changes","changes":[{"op":"read","after":{"a":1,"a":{"b":2}},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "duplicate payload", line: `{"type":"changes","changes":[{"op":"message","payload":{"a":1},"payload":{"b":2},"position":{"v":1,"d":"AA=="}}]}`},
		{name: "trailing message", line: `{"type":"credit","n":1} {"type":"credit","n":2}`},
		{name: "vertical tab after", line: "{\"type\":\"credit\",\"n\":1}\v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkJSONLine(t, []byte(tt.line))
		})
	}
}

// FuzzJSONChanges checks that a JSON Lines message decodes as encoding/json
// with UseNumber decodes it, changes messages (the hand-written decoder)
// and others alike: the same lines accepted, the same messages. Its seeds
// in testdata/fuzz are the cases of TestJSONChangesDecodeAsEncodingJSON.
func FuzzJSONChanges(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		// A line ends at its first newline; JSON reads one as white space.
		checkJSONLine(t, bytes.ReplaceAll(line, []byte("\n"), []byte(" ")))
	})
}

// checkJSONLine fails t unless Recv decodes line as encoding/json does:
// one JSON value with UseNumber, nothing after it, and a type.
func checkJSONLine(t *testing.T, line []byte) {
	t.Helper()
	var want plugin.Message
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	wantErr := dec.Decode(&want)
	if wantErr == nil {
		if _, err := dec.Token(); err != io.EOF {
			wantErr = fmt.Errorf("data after the value: %v", err)
		} else if want.Type == "" {
			wantErr = errors.New("no type")
		}
	}
	got, err := plugin.NewJSONConn(bytes.NewReader(append(line, '\n')), &bytes.Buffer{}).Recv()
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("Recv(%q) error = %v, encoding/json error = %v", line, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(*got, want) {
		t.Fatalf("Recv(%q) = %+v\nwant %+v", line, *got, want)
	}
}
