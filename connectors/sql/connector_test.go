package sql_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/sql"
	"github.com/tributary/tributary/core"
)

func TestSampleConfigures(t *testing.T) {
	configtest.Sample(t, "sample.yaml", connector.Spec())
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Source(connector.Type)
	if !ok {
		t.Fatal("sql_poll is not registered")
	}
	if _, ok := spec.New().(*connector.Source); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

func validValues() map[string]any {
	return map[string]any{
		"driver": "postgres",
		"dsn":    "postgres://u:p@127.0.0.1/db",
		"table":  "orders",
		"key":    []any{"id"},
		"cursor": map[string]any{"column": "updated_at", "type": "timestamp", "look_back": "1m"},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(v map[string]any)
		path   string // the field the error names; "" means valid
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "snapshot", change: func(v map[string]any) { v["mode"] = "snapshot"; delete(v, "cursor") }},
		{name: "unknown driver", change: func(v map[string]any) { v["driver"] = "db2" }, path: "driver"},
		{name: "no dsn", change: func(v map[string]any) { v["dsn"] = "" }, path: "dsn"},
		{name: "no table nor query", change: func(v map[string]any) { delete(v, "table") }, path: "table"},
		{name: "table and query", change: func(v map[string]any) { v["query"] = "SELECT 1" }, path: "query"},
		{name: "table injection", change: func(v map[string]any) { v["table"] = "orders; DROP TABLE x" }, path: "table"},
		{name: "no key", change: func(v map[string]any) { delete(v, "key") }, path: "key"},
		{name: "two keys in cursor mode", change: func(v map[string]any) { v["key"] = []any{"a", "b"} }, path: "key"},
		{name: "no cursor column", change: func(v map[string]any) { v["cursor"] = map[string]any{"type": "timestamp"} }, path: "cursor.column"},
		{name: "bad cursor type", change: func(v map[string]any) { v["cursor"].(map[string]any)["type"] = "uuid" }, path: "cursor.type"},
		{name: "count look-back on timestamp", change: func(v map[string]any) { v["cursor"].(map[string]any)["look_back"] = "100" }, path: "cursor.look_back"},
		{name: "integer look-back", change: func(v map[string]any) {
			v["cursor"] = map[string]any{"column": "id", "type": "integer", "look_back": "100"}
		}},
		{name: "bad schedule", change: func(v map[string]any) { v["schedule"] = "sometimes" }, path: "schedule"},
		{name: "bad zone", change: func(v map[string]any) { v["time_zone"] = "Moon/Base" }, path: "time_zone"},
		{name: "bad catch-up", change: func(v map[string]any) { v["catch_up"] = "some" }, path: "catch_up"},
		{name: "unknown parameter", change: func(v map[string]any) {
			delete(v, "table")
			v["query"] = "SELECT * FROM t WHERE a > :since"
		}, path: "query"},
		{name: "paged query without key", change: func(v map[string]any) {
			delete(v, "table")
			v["query"] = "SELECT * FROM t WHERE updated_at >= :cursor ORDER BY updated_at LIMIT :limit"
		}, path: "query"},
		{name: "bad template", change: func(v map[string]any) {
			delete(v, "table")
			v["query"] = "SELECT * FROM t {{if .Cursor}}"
		}, path: "query"},
		{name: "page size", change: func(v map[string]any) { v["page_size"] = -1 }, path: "page_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validValues()
			tt.change(v)
			err := connector.New().Configure(core.NewConfig("orders", v))
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Configure() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Configure() = nil, want an error on %s", tt.path)
			}
			found := false
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if errors.As(e, &fe) && fe.Path == tt.path {
					found = true
				}
			}
			if !found {
				t.Fatalf("Configure() = %v, want an error on %s", err, tt.path)
			}
			if strings.Contains(err.Error(), "u:p@") {
				t.Fatalf("error quotes the DSN: %v", err)
			}
		})
	}
}
