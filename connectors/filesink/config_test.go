package filesink_test

import (
	"strings"
	"testing"

	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
)

func validCSV() map[string]any {
	return map[string]any{
		"dir": "/srv/drop", "format": "csv", "name": "o-{time}-{seq}.csv",
		"columns": []any{map[string]any{"name": "id", "value": "event.id"}},
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string // "" for valid
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "valid jsonl without columns", change: func(m map[string]any) {
			m["format"] = "jsonl"
			delete(m, "columns")
			delete(m, "name")
		}},
		{name: "no dir", change: func(m map[string]any) { m["dir"] = "" }, want: "dir: is empty"},
		{name: "csv without columns", change: func(m map[string]any) { delete(m, "columns") }, want: "columns: is required with format: csv"},
		{name: "unknown format", change: func(m map[string]any) { m["format"] = "xml" }, want: "format"},
		{name: "name with a directory", change: func(m map[string]any) { m["name"] = "sub/o-{seq}.csv" }, want: "is not a file name"},
		{name: "hidden name", change: func(m map[string]any) { m["name"] = ".o-{seq}.csv" }, want: "starts with a dot"},
		{name: "name that never changes", change: func(m map[string]any) { m["name"] = "orders.csv" }, want: "neither {seq} nor {time}"},
		{name: "no max_age", change: func(m map[string]any) { m["max_age"] = "0s" }, want: "max_age"},
		{name: "negative max_events", change: func(m map[string]any) { m["max_events"] = -1 }, want: "max_events"},
		{name: "bad file mode", change: func(m map[string]any) { m["file_mode"] = "rw-r--r--" }, want: "file_mode"},
		{name: "column twice", change: func(m map[string]any) {
			m["columns"] = []any{map[string]any{"name": "id", "value": "event.id"}, map[string]any{"name": "id", "value": "event.type"}}
		}, want: `columns[1].name: "id" is listed twice`},
		{name: "expression does not compile", change: func(m map[string]any) {
			m["columns"] = []any{map[string]any{"name": "id", "value": "event.("}}
		}, want: "columns[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validCSV()
			tt.change(m)
			err := filesink.New().Configure(core.NewConfig("drop", m))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Configure: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Configure succeeded, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Configure: %v, want an error with %q", err, tt.want)
			}
		})
	}
}
