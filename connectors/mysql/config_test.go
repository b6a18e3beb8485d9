package mysql_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/mysql"
	"github.com/tributary/tributary/core"
)

func TestSampleConfigures(t *testing.T) {
	configtest.Sample(t, "sample.yaml", connector.Spec())
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Source(connector.Type)
	if !ok {
		t.Fatal("mysql_cdc is not registered")
	}
	if _, ok := spec.New().(*connector.Source); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

func TestDeclaredEnumsAreTheModes(t *testing.T) {
	spec, _ := core.DefaultRegistry.Source(connector.Type)
	for _, f := range spec.Fields {
		for _, sub := range f.Fields {
			if f.Name+"."+sub.Name == "snapshot.mode" && !slices.Equal(sub.Enum, cdc.SnapshotModes()) {
				t.Errorf("snapshot.mode declares enum %v, want %v", sub.Enum, cdc.SnapshotModes())
			}
		}
	}
}

func TestConfigValidation(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"dsn": "u:secretpw@tcp(db:3306)/shop", "tables": []any{"shop.orders", "lines"}}
	}
	tests := []struct {
		name      string
		edit      func(v map[string]any)
		wantPaths []string
	}{
		{name: "valid", edit: func(map[string]any) {}},
		{name: "all tables of the database", edit: func(v map[string]any) { delete(v, "tables") }},
		{name: "missing dsn", edit: func(v map[string]any) { delete(v, "dsn") }, wantPaths: []string{"dsn"}},
		{name: "bad dsn", edit: func(v map[string]any) { v["dsn"] = "u:secretpw@tcp(db:port/shop" }, wantPaths: []string{"dsn"}},
		{name: "socket dsn", edit: func(v map[string]any) { v["dsn"] = "u:secretpw@unix(/tmp/s)/shop" }, wantPaths: []string{"dsn"}},
		{name: "no database, no tables", edit: func(v map[string]any) {
			v["dsn"] = "u:secretpw@tcp(db:3306)/"
			delete(v, "tables")
		}, wantPaths: []string{"tables"}},
		{name: "bad table", edit: func(v map[string]any) { v["tables"] = []any{"a.b.c"} }, wantPaths: []string{"tables[0]"}},
		{name: "bad mode", edit: func(v map[string]any) { v["snapshot"] = map[string]any{"mode": "always"} }, wantPaths: []string{"snapshot.mode"}},
		{name: "bad chunk", edit: func(v map[string]any) { v["snapshot"] = map[string]any{"chunk_size": 0} }, wantPaths: []string{"snapshot.chunk_size"}},
		{name: "short heartbeat", edit: func(v map[string]any) { v["heartbeat"] = map[string]any{"interval": "1ms"} }, wantPaths: []string{"heartbeat.interval"}},
		{name: "unknown key", edit: func(v map[string]any) { v["tabels"] = []any{"x"} }, wantPaths: []string{"tabels"}},
		{name: "several problems at once", edit: func(v map[string]any) {
			v["max_batch"] = 0
			v["snapshot"] = map[string]any{"chunk_size": 0}
		}, wantPaths: []string{"max_batch", "snapshot.chunk_size"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := valid()
			tc.edit(v)
			err := connector.New().Configure(core.NewConfig("orders", v))
			var paths []string
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a FieldError", e)
				}
				paths = append(paths, fe.Path)
				if strings.Contains(fe.Error(), "secretpw") {
					t.Errorf("error leaks the password: %v", fe)
				}
			}
			slices.Sort(paths)
			want := slices.Clone(tc.wantPaths)
			slices.Sort(want)
			if !slices.Equal(paths, want) {
				t.Fatalf("paths %v, want %v (err %v)", paths, want, err)
			}
		})
	}
}
