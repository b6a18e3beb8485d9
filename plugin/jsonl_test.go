package plugin_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want plugin.Message
			dec := json.NewDecoder(strings.NewReader(tt.line))
			dec.UseNumber()
			wantErr := dec.Decode(&want)
			got, err := plugin.NewJSONConn(strings.NewReader(tt.line+"\n"), &bytes.Buffer{}).Recv()
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("Recv error = %v, encoding/json error = %v", err, wantErr)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Recv = %+v\nwant   %+v", *got, want)
			}
		})
	}
}
