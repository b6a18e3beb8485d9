package postgres_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tributary/tributary/adapters/cdc"
	"github.com/tributary/tributary/config/configtest"

	connector "github.com/tributary/tributary/connectors/postgres"
	"github.com/tributary/tributary/core"
)

func TestSampleConfigures(t *testing.T) {
	configtest.SampleWithSecrets(t, "sample.yaml", map[string]string{
		"/run/secrets/billing_pg_url": "postgres://tributary:secret@127.0.0.1:5432/billing",
	}, connector.Spec())
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Source(connector.Type)
	if !ok {
		t.Fatal("postgres_cdc is not registered")
	}
	if _, ok := spec.New().(*connector.Source); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

// TestDeclaredEnumsAreTheModes: the values the tags of Config allow are
// the modes the code acts on, so the schema and validation cannot offer a
// mode the connector does not know.
func TestDeclaredEnumsAreTheModes(t *testing.T) {
	spec, _ := core.DefaultRegistry.Source(connector.Type)
	enums := map[string][]string{}
	for _, f := range spec.Fields {
		enums[f.Name] = f.Enum
		for _, sub := range f.Fields {
			enums[f.Name+"."+sub.Name] = sub.Enum
		}
	}
	for key, want := range map[string][]string{
		"setup":            {connector.SetupAuto, connector.SetupVerify},
		"snapshot.mode":    cdc.SnapshotModes(),
		"heartbeat.action": {connector.HeartbeatStatus, connector.HeartbeatMessage},
	} {
		if !slices.Equal(enums[key], want) {
			t.Errorf("%s declares enum %v, want %v", key, enums[key], want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"url": "postgres://u:secretpw@db:5432/erp", "tables": []any{"public.orders"}}
	}
	tests := []struct {
		name      string
		edit      func(v map[string]any)
		wantPaths []string
	}{
		{name: "valid", edit: func(map[string]any) {}},
		{name: "missing url", edit: func(v map[string]any) { delete(v, "url") }, wantPaths: []string{"url"}},
		{name: "bad url", edit: func(v map[string]any) { v["url"] = "postgres://u:secretpw@db:notaport/erp" }, wantPaths: []string{"url"}},
		{name: "bad table", edit: func(v map[string]any) { v["tables"] = []any{"a.b.c"} }, wantPaths: []string{"tables[0]"}},
		{name: "bad slot", edit: func(v map[string]any) { v["slot"] = "Bad-Slot" }, wantPaths: []string{"slot"}},
		{name: "bad setup", edit: func(v map[string]any) { v["setup"] = "create" }, wantPaths: []string{"setup"}},
		{name: "bad mode", edit: func(v map[string]any) { v["snapshot"] = map[string]any{"mode": "always"} }, wantPaths: []string{"snapshot.mode"}},
		{name: "bad chunk", edit: func(v map[string]any) { v["snapshot"] = map[string]any{"chunk_size": -1} }, wantPaths: []string{"snapshot.chunk_size"}},
		{name: "short heartbeat", edit: func(v map[string]any) { v["heartbeat"] = map[string]any{"interval": "1ms"} }, wantPaths: []string{"heartbeat.interval"}},
		{name: "bad action", edit: func(v map[string]any) { v["heartbeat"] = map[string]any{"action": "ping"} }, wantPaths: []string{"heartbeat.action"}},
		{name: "delete without outbox", edit: func(v map[string]any) { v["outbox"] = map[string]any{"delete_captured": true} }, wantPaths: []string{"outbox.delete_captured"}},
		{name: "unknown key", edit: func(v map[string]any) { v["tabels"] = []any{"x"} }, wantPaths: []string{"tabels"}},
		{name: "several problems at once", edit: func(v map[string]any) {
			v["slot"] = "X"
			v["max_batch"] = 0 - 1
		}, wantPaths: []string{"slot", "max_batch"}},
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
