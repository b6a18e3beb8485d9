package core_test

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

type codec string

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	}
	return nil
}

type sampleTLS struct {
	Enabled bool   `yaml:"enabled" default:"false" doc:"Use TLS."`
	KeyFile string `yaml:"key_file" secret:"true" doc:"PEM private key."`
}

type sampleTable struct {
	Name string   `yaml:"name" required:"true" doc:"Table name."`
	Key  []string `yaml:"key" default:"[id]" doc:"Key columns."`
}

type sampleShared struct {
	Schedule string `yaml:"schedule" default:"@every 1m" doc:"When to run."`
}

type sampleConfig struct {
	sampleShared `yaml:",inline"`
	Brokers      []string          `yaml:"brokers" required:"true" doc:"Bootstrap brokers." example:"[k1:9092]"`
	ClientID     string            `yaml:"client_id" default:"tributary" doc:"Client id."`
	Codec        codec             `yaml:"compression" default:"none" enum:"none, lz4,zstd" doc:"Codec."`
	Batch        int               `yaml:"batch" default:"500" doc:"Batch size."`
	Ratio        float64           `yaml:"ratio" default:"0.5" doc:"A ratio."`
	Linger       time.Duration     `yaml:"linger" default:"5ms" doc:"Linger."`
	Headers      map[string]string `yaml:"headers" doc:"Headers."`
	Level        level             `yaml:"level" default:"low" doc:"Level." deprecated:"use codec"`
	TLS          sampleTLS         `yaml:"tls" doc:"TLS."`
	Tables       []sampleTable     `yaml:"tables" doc:"Tables."`
	Extra        map[string]any    `yaml:"extra" doc:"Anything."`
	parsed       int
	Computed     int `yaml:"-"`
}

func TestFieldsOfDeclaresEachKeyOnce(t *testing.T) {
	fields := core.FieldsOf[sampleConfig]()
	want := []core.Field{
		{Name: "schedule", Type: core.TypeString, Default: "@every 1m", Doc: "When to run."},
		{Name: "brokers", Type: core.TypeStrings, Required: true, Doc: "Bootstrap brokers.", Example: "[k1:9092]"},
		{Name: "client_id", Type: core.TypeString, Default: "tributary", Doc: "Client id."},
		{Name: "compression", Type: core.TypeString, Default: "none", Enum: []string{"none", "lz4", "zstd"}, Doc: "Codec."},
		{Name: "batch", Type: core.TypeInt, Default: 500, Doc: "Batch size."},
		{Name: "ratio", Type: core.TypeFloat, Default: 0.5, Doc: "A ratio."},
		{Name: "linger", Type: core.TypeDuration, Default: "5ms", Doc: "Linger."},
		{Name: "headers", Type: core.TypeMap, Doc: "Headers."},
		{Name: "level", Type: core.TypeString, Default: "low", Doc: "Level.", Deprecated: "use codec"},
		{Name: "tls", Type: core.TypeObject, Doc: "TLS.", Fields: []core.Field{
			{Name: "enabled", Type: core.TypeBool, Default: false, Doc: "Use TLS."},
			{Name: "key_file", Type: core.TypeString, Secret: true, Doc: "PEM private key."},
		}},
		{Name: "tables", Type: core.TypeObjects, Doc: "Tables.", Fields: []core.Field{
			{Name: "name", Type: core.TypeString, Required: true, Doc: "Table name."},
			{Name: "key", Type: core.TypeStrings, Default: []string{"id"}, Doc: "Key columns."},
		}},
		{Name: "extra", Type: core.TypeAny, Doc: "Anything."},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("FieldsOf =\n%#v\nwant\n%#v", fields, want)
	}
}

type blockSnapshot struct {
	ChunkSize int `yaml:"chunk_size" default:"10000" doc:"Rows per chunk."`
}

type blockConfig struct {
	Snapshot blockSnapshot  `yaml:"snapshot" doc:"The snapshot."`
	Optional *blockSnapshot `yaml:"optional" doc:"Absent means none."`
}

func TestDecodeAppliesDeclaredDefaults(t *testing.T) {
	var c sampleConfig
	err := core.NewConfig("x", map[string]any{
		"brokers": []any{"k1:9092"},
		"tls":     map[string]any{"key_file": "/k"},
		"tables":  []any{map[string]any{"name": "orders"}},
	}).Decode(&c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule != "@every 1m" || c.ClientID != "tributary" || c.Codec != "none" || c.Batch != 500 || c.Ratio != 0.5 || c.Linger != 5*time.Millisecond || c.Level != 1 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.TLS.KeyFile != "/k" || c.TLS.Enabled {
		t.Fatalf("tls = %+v", c.TLS)
	}
	var left blockConfig
	if err := core.NewConfig("x", nil).Decode(&left); err != nil {
		t.Fatal(err)
	}
	if left.Snapshot.ChunkSize != 10000 || left.Optional != nil {
		t.Fatalf("left-out blocks = %+v, %+v; want the struct block's defaults and the pointer block nil", left.Snapshot, left.Optional)
	}
	if len(c.Tables) != 1 || c.Tables[0].Name != "orders" || !reflect.DeepEqual(c.Tables[0].Key, []string{"id"}) {
		t.Fatalf("tables = %+v, want the key default inside each element", c.Tables)
	}
	err = core.NewConfig("x", map[string]any{"brokers": []any{"k"}, "batch": 7, "nope": 1}).Decode(&c)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown key decoded: %v", err)
	}
}

// TestDecodeNamesTheFieldOfEveryProblem: a value of the wrong type is an
// error at its key's path, every such value is reported, and the other keys
// still decode; a number given for a duration is read as its text, as the
// config loader reads YAML.
func TestDecodeNamesTheFieldOfEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		paths  []string // the *core.FieldError paths expected; none means it decodes
	}{
		{name: "zero as a duration", values: map[string]any{"linger": 0}},
		{name: "bad duration", values: map[string]any{"linger": "soon"}, paths: []string{"linger"}},
		{name: "number with no unit", values: map[string]any{"linger": 5}, paths: []string{"linger"}},
		{name: "string for an int", values: map[string]any{"batch": "many"}, paths: []string{"batch"}},
		{name: "in an object", values: map[string]any{"tls": map[string]any{"enabled": "maybe"}}, paths: []string{"tls.enabled"}},
		{name: "object for a string", values: map[string]any{"client_id": map[string]any{"a": "b"}}, paths: []string{"client_id"}},
		{name: "in a list", values: map[string]any{"brokers": []any{"k1:9092", map[string]any{"a": "b"}}}, paths: []string{"brokers[1]"}},
		{name: "in a list of objects", values: map[string]any{"tables": []any{map[string]any{"name": "a"}, map[string]any{"name": "b", "key": "id"}}}, paths: []string{"tables[1].key"}},
		{name: "every problem", values: map[string]any{"batch": "many", "linger": "soon", "nope": 1}, paths: []string{"batch", "linger", "nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.values["ratio"] = 0.25
			var c sampleConfig
			err := core.NewConfig("x", tc.values).Decode(&c)
			var got []string
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a *core.FieldError", e)
				}
				got = append(got, fe.Path)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.paths) {
				t.Fatalf("error paths = %q (%v), want %q", got, err, tc.paths)
			}
			if c.Ratio != 0.25 {
				t.Fatalf("ratio = %v: the keys without a problem were not decoded", c.Ratio)
			}
		})
	}
}

func TestFieldsOfRefusesMalformedDeclarations(t *testing.T) {
	type noDoc struct {
		A string `yaml:"a"`
	}
	type noYAML struct {
		A string `doc:"A."`
	}
	type badDefault struct {
		N int `yaml:"n" default:"ten" doc:"N."`
	}
	type defaultOutsideEnum struct {
		C string `yaml:"c" default:"brotli" enum:"none,lz4" doc:"C."`
	}
	type requiredWithDefault struct {
		C string `yaml:"c" default:"x" required:"true" doc:"C."`
	}
	type unsupported struct {
		C chan int `yaml:"c" doc:"C."`
	}
	for _, tt := range []struct {
		name string
		f    func()
		want string
	}{
		{name: "no doc", f: func() { core.FieldsOf[noDoc]() }, want: "no doc tag"},
		{name: "no yaml", f: func() { core.FieldsOf[noYAML]() }, want: "no yaml tag"},
		{name: "bad default", f: func() { core.FieldsOf[badDefault]() }, want: `default "ten"`},
		{name: "default outside enum", f: func() { core.FieldsOf[defaultOutsideEnum]() }, want: "not one of its enum"},
		{name: "required with default", f: func() { core.FieldsOf[requiredWithDefault]() }, want: "required and has a default"},
		{name: "unsupported type", f: func() { core.FieldsOf[unsupported]() }, want: "no configuration field type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil || !strings.Contains(p.(string), tt.want) {
					t.Fatalf("panic %v, want one saying %q", p, tt.want)
				}
			}()
			tt.f()
		})
	}
}

func TestRegistryDerivesFieldsFromConfig(t *testing.T) {
	reg := core.NewRegistry()
	reg.RegisterSource(core.SourceSpec{Type: "sample", Config: sampleConfig{}, New: func() core.Source { return core.SourceFunc(nil) }})
	spec, _ := reg.Source("sample")
	if !reflect.DeepEqual(spec.Fields, core.FieldsOf[sampleConfig]()) {
		t.Fatal("the registry did not derive the fields from Config")
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(p.(string), "declare each key once") {
			t.Fatalf("panic %v, want one refusing Config and Fields together", p)
		}
	}()
	reg.RegisterSource(core.SourceSpec{Type: "both", Config: sampleConfig{}, Fields: []core.Field{{Name: "a", Type: core.TypeString}}, New: func() core.Source { return core.SourceFunc(nil) }})
}
