package sqlsink_test

import (
	"strings"
	"testing"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
)

// validUpsert is a valid configuration; each case breaks one thing.
func validUpsert() map[string]any {
	return map[string]any{
		"driver": "postgres", "dsn": "postgres://u:p@h/db", "table": "erp.orders", "mode": "upsert",
		"key": []any{"order_id"}, "version": "version", "delete_when": `event.type == "deleted"`,
		"columns": []any{
			map[string]any{"name": "order_id", "value": "event.data.order_id"},
			map[string]any{"name": "version", "value": "event.data.version", "type": "integer"},
		},
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name   string
		change func(m map[string]any)
		want   string // "" for valid
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "valid insert", change: func(m map[string]any) {
			m["mode"] = "insert"
			delete(m, "key")
			delete(m, "version")
			delete(m, "delete_when")
		}},
		{name: "unknown driver", change: func(m map[string]any) { m["driver"] = "db2" }, want: "driver"},
		{name: "table with SQL", change: func(m map[string]any) { m["table"] = "orders; DROP TABLE x" }, want: "table: \"orders; DROP TABLE x\" is not a table name"},
		{name: "upsert without key", change: func(m map[string]any) { delete(m, "key") }, want: "key: is required with mode: upsert"},
		{name: "key not a column", change: func(m map[string]any) { m["key"] = []any{"order_no"} }, want: `key[0]: "order_no" is not one of the columns`},
		{name: "upsert without version", change: func(m map[string]any) { delete(m, "version") }, want: "version: is required with mode: upsert"},
		{name: "version is the key", change: func(m map[string]any) { m["version"] = "order_id" }, want: "is a key column"},
		{name: "key in insert mode", change: func(m map[string]any) { m["mode"] = "insert" }, want: "key: is for mode: upsert"},
		{name: "insert without id column", change: func(m map[string]any) {
			m["mode"], m["id_column"] = "insert", ""
			delete(m, "key")
			delete(m, "version")
			delete(m, "delete_when")
		}, want: "id_column: is empty: insert mode needs"},
		{name: "id column also mapped", change: func(m map[string]any) { m["id_column"] = "order_id" }, want: `id_column: "order_id" is also in columns`},
		{name: "column twice", change: func(m map[string]any) {
			m["columns"] = append(m["columns"].([]any), map[string]any{"name": "version", "value": "1"})
		}, want: `columns[2].name: "version" is listed twice`},
		{name: "bad column type", change: func(m map[string]any) {
			m["columns"].([]any)[1].(map[string]any)["type"] = "money"
		}, want: "columns[1].type"},
		{name: "bad sql_type", change: func(m map[string]any) {
			m["columns"].([]any)[1].(map[string]any)["sql_type"] = "INT; DROP"
		}, want: "columns[1].sql_type"},
		{name: "expression does not compile", change: func(m map[string]any) {
			m["columns"].([]any)[0].(map[string]any)["value"] = "event.data.("
		}, want: "columns[0].value"},
		{name: "delete_when not a condition", change: func(m map[string]any) { m["delete_when"] = "event.type" }, want: "delete_when"},
		{name: "no columns", change: func(m map[string]any) { m["columns"] = []any{} }, want: "columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validUpsert()
			tt.change(m)
			err := sqlsink.New().Configure(core.NewConfig("orders", m))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Configure: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Configure succeeded, want an error with %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Configure: %v, want an error with %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("the error quotes the DSN: %v", err)
			}
		})
	}
}
