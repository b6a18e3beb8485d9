package audit_test

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/connectors/audit"
	_ "github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

// TestConfigValidate starts from a valid configuration and breaks one
// thing per case; every problem names its key.
func TestConfigValidate(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"driver": "postgres", "dsn": "postgres://u:p@h/db", "retention": "720h"}
	}
	tests := []struct {
		name  string
		edit  func(v map[string]any)
		paths []string
	}{
		{name: "valid postgres", edit: func(map[string]any) {}},
		{name: "valid sqlite defaults", edit: func(v map[string]any) { clear(v) }},
		{name: "unknown driver", edit: func(v map[string]any) { v["driver"] = "mysql" }, paths: []string{"driver"}},
		{name: "postgres without dsn", edit: func(v map[string]any) { delete(v, "dsn") }, paths: []string{"dsn"}},
		{name: "sqlite with a dsn", edit: func(v map[string]any) { v["driver"] = "sqlite" }, paths: []string{"dsn"}},
		{name: "sqlite with an empty path", edit: func(v map[string]any) { clear(v); v["path"] = " " }, paths: []string{"path"}},
		{name: "table prefix not a name", edit: func(v map[string]any) { v["table_prefix"] = "audit-log; drop" }, paths: []string{"table_prefix"}},
		{name: "negative retention", edit: func(v map[string]any) { v["retention"] = "-1h" }, paths: []string{"retention"}},
		{name: "prune_every zero", edit: func(v map[string]any) { v["prune_every"] = "0s" }, paths: []string{"prune_every"}},
		{name: "no connection", edit: func(v map[string]any) { v["max_open_conns"] = 0 }, paths: []string{"max_open_conns"}},
		{name: "unknown key", edit: func(v map[string]any) { v["retension"] = "1h" }, paths: []string{"retension"}},
		{name: "every problem at once", edit: func(v map[string]any) {
			delete(v, "dsn")
			v["retention"] = "-1h"
			v["sync"] = "always"
		}, paths: []string{"dsn", "retention", "sync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := valid()
			tt.edit(v)
			err := audit.New().Configure(core.NewConfig("audit_log", v))
			var got []string
			for _, e := range flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *core.FieldError", e)
				}
				got = append(got, fe.Path)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.paths) {
				t.Errorf("problems at %v (%v), want %v", got, err, tt.paths)
			}
			if err != nil && strings.Contains(err.Error(), "u:p@") {
				t.Errorf("a problem quotes the dsn: %v", err)
			}
		})
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// TestSampleConfigures: sample.yaml, which README.md shows as it is, loads
// as the sinks of a sidecar configuration, and shows every key.
func TestSampleConfigures(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := "version: 1\nstream: {type: embedded, topics: {mode: single}}\n" + string(data)
	cfg, err := config.ParseWith("sample.yaml", []byte(doc), core.DefaultRegistry, config.Options{
		OpenSecret: func(string) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader("postgres://audit:secret@db.example:5432/audit")), nil
		},
	})
	if err != nil {
		t.Fatalf("sample.yaml does not load:\n%v", err)
	}
	shown := map[string]bool{}
	for _, sc := range cfg.Sinks {
		if sc.Type != audit.Type {
			t.Errorf("sink %q has type %q", sc.Name, sc.Type)
		}
		if _, err := sc.NewSink(core.DefaultRegistry); err != nil {
			t.Errorf("sink %q: %v", sc.Name, err)
		}
		for k := range sc.Config.Values {
			shown[k] = true
		}
	}
	for _, f := range audit.Spec().Fields {
		if !shown[f.Name] && f.Name != "path" && f.Name != "sync" {
			t.Errorf("sample.yaml does not show key %q", f.Name)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), string(data)) {
		t.Error("README.md does not show sample.yaml as it is")
	}
}

// TestRegistered: the audit type is in the default registry, and its spec
// registers in a registry of its own.
func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Sink(audit.Type)
	if !ok {
		t.Fatal("audit is not a registered sink type")
	}
	if _, ok := spec.New().(*audit.Sink); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSink(audit.Spec())
}

// An unreachable PostgreSQL fails Open with an error that names no
// password; rejected credentials are fatal.
func TestOpenPostgresErrorsHideThePassword(t *testing.T) {
	s := audit.New()
	if err := s.Configure(core.NewConfig("audit_log", map[string]any{
		"driver": "postgres", "dsn": "postgres://audit:TOPSECRET-PW@127.0.0.1:1/audit?connect_timeout=2",
	})); err != nil {
		t.Fatal(err)
	}
	err := s.Open(context.Background(), core.Env{Name: "audit_log", StateDir: t.TempDir()})
	if err == nil {
		t.Fatal("Open reached a closed port")
	}
	if strings.Contains(err.Error(), "TOPSECRET-PW") {
		t.Errorf("the error quotes the password: %v", err)
	}
	if errors.Is(err, core.ErrFatal) {
		t.Errorf("a refused connection is fatal; it may pass: %v", err)
	}
}
