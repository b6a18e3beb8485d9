package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// nestedSource carries another program's settings under "settings", declared
// by the manifest its "manifest" key names, as the plugin connector does.
type nestedSource struct {
	core.SourceFunc
}

func (s *nestedSource) Configure(cfg core.Config) error {
	var c struct {
		Command  string `yaml:"command"`
		Manifest string `yaml:"manifest"`
		Settings any    `yaml:"settings"`
	}
	if err := cfg.Decode(&c); err != nil {
		return err
	}
	if _, ok := c.Settings.(map[string]any); c.Settings != nil && !ok {
		return core.FieldErrorf("settings", "must be a mapping")
	}
	return nil
}

func (s *nestedSource) NestedConfig() (block, manifest string) { return "settings", "manifest" }

var _ config.Nested = (*nestedSource)(nil)

func nestedRegistry() *core.Registry {
	reg := testRegistry()
	reg.RegisterSource(core.SourceSpec{Type: "external", Summary: "Runs another program.", Fields: []core.Field{
		{Name: "command", Type: core.TypeString, Required: true, Doc: "The program."},
		{Name: "manifest", Type: core.TypeString, Doc: "Declares the fields of settings."},
		{Name: "settings", Type: core.TypeAny, Doc: "The program's own settings."},
	}, New: func() core.Source { return &nestedSource{} }})
	return reg
}

const ledgerManifest = `fields:
  - name: ledger
    type: string
    required: true
  - name: poll_interval
    type: duration
    default: 5s
  - name: batch
    type: int
    default: 100
  - name: mode
    type: string
    enum: [follow, snapshot]
    default: follow
  - name: api
    type: object
    fields:
      - {name: url, type: string, required: true}
      - {name: token, type: string, secret: true}
`

// nestedYAML is the valid starting point; line numbers matter below.
const nestedYAML = `connectors:
  - name: ledger
    type: external
    config:
      command: ledger-plugin
      manifest: ledger.manifest.yaml
      settings:
        ledger: /data/ledger.csv
        batch: "250"
        api: {url: "https://ledger.example", token: s3cret}
    emit:
      - {name: posted, type: com.acme.ledger.posted}
`

// parseNested writes the manifest (when not empty) and parses doc beside it.
func parseNested(t *testing.T, doc, manifest string) (*config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(dir, "ledger.manifest.yaml"), []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return config.Parse(filepath.Join(dir, "tributary.yaml"), []byte(doc), nestedRegistry())
}

func TestNestedBlockValidAndDefaulted(t *testing.T) {
	cfg, err := parseNested(t, nestedYAML, ledgerManifest)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]any{
		"ledger":        "/data/ledger.csv",
		"poll_interval": "5s",
		"batch":         250,
		"mode":          "follow",
		"api":           map[string]any{"url": "https://ledger.example", "token": "s3cret"},
	}
	if got := cfg.Connectors[0].Config.Values["settings"]; !reflect.DeepEqual(got, want) {
		t.Errorf("settings = %#v\nwant %#v", got, want)
	}
	red := cfg.Redacted().Connectors[0].Config.Values["settings"].(map[string]any)["api"].(map[string]any)["token"]
	if red != config.Redaction {
		t.Errorf("Redacted settings.api.token = %v, want %q: the manifest declares it secret", red, config.Redaction)
	}
}

func TestNestedBlockWithoutManifestPassesAsWritten(t *testing.T) {
	doc := edit(t, nestedYAML, "      manifest: ledger.manifest.yaml\n", "")
	doc = edit(t, doc, "        ledger: /data/ledger.csv", "        ledgr: /data/ledger.csv")
	cfg, err := parseNested(t, doc, "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := cfg.Connectors[0].Config.Values["settings"].(map[string]any)
	if got["ledgr"] != "/data/ledger.csv" || got["batch"] != "250" {
		t.Errorf("settings = %#v, want them as written", got)
	}
}

func TestNestedBlockProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     []string // "line:col: field: message"
	}{
		{
			name: "unknown key", old: "        ledger: /data", new: "        ledgr: /data",
			want: []string{
				`7:7: connectors[0].config.settings.ledger: required field "ledger" is missing`,
				`8:9: connectors[0].config.settings.ledgr: unknown key "ledgr" (did you mean "ledger"?); known keys: api, batch, ledger, mode, poll_interval`,
			},
		},
		{
			name: "wrong type", old: `batch: "250"`, new: `batch: lots`,
			want: []string{`9:16: connectors[0].config.settings.batch: "lots" is not an integer (example: 10)`},
		},
		{
			name: "enum", old: `batch: "250"`, new: `mode: tail`,
			want: []string{`9:15: connectors[0].config.settings.mode: "tail" is not one of "follow", "snapshot"`},
		},
		{
			name: "nested object", old: `{url: "https://ledger.example", token: s3cret}`, new: `{token: s3cret}`,
			want: []string{`10:9: connectors[0].config.settings.api.url: required field "url" is missing`},
		},
		{
			name: "block absent",
			old:  "      settings:\n        ledger: /data/ledger.csv\n        batch: \"250\"\n        api: {url: \"https://ledger.example\", token: s3cret}\n",
			new:  "",
			want: []string{`4:5: connectors[0].config.settings.ledger: required field "ledger" is missing`},
		},
		{
			name: "not a mapping",
			old:  "      settings:\n        ledger: /data/ledger.csv\n        batch: \"250\"\n        api: {url: \"https://ledger.example\", token: s3cret}\n",
			new:  "      settings: [a, b]\n",
			want: []string{`7:17: connectors[0].config.settings: expected a mapping with keys such as "ledger", "poll_interval", "batch", got a list`},
		},
		{
			name: "secret not quoted", old: `token: s3cret}`, new: `token: [s3cret]}`,
			want: []string{`10:53: connectors[0].config.settings.api.token: expected a string, got a list`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseNested(t, edit(t, nestedYAML, tt.old, tt.new), ledgerManifest)
			var got []string
			for _, p := range problems(t, err) {
				p.File = ""
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestManifestProblems(t *testing.T) {
	tests := []struct {
		name     string
		manifest string
		want     string // "line:col: field: message" in the manifest
	}{
		{"not YAML", "fields: [", `2: invalid YAML: did not find expected node content`},
		{"no fields", "name: x\n", `1:1: name: unknown key "name"; known keys: fields`},
		{"fields not a list", "fields: {a: b}\n", `1:9: fields: expected a list of field declarations, each with a name and a type, got a mapping`},
		{"unknown type", "fields:\n  - {name: a, type: sting}\n", `2:21: fields[0].type: "sting" is not one of "string", "int", "float", "bool", "duration", "strings", "map", "object", "objects", "any" (did you mean "string"?)`},
		{"name not plain", "fields:\n  - {name: a.b, type: string}\n", `2:12: fields[0].name: "a.b" is not a plain key: use letters, digits, '_' and '-', starting with a letter or '_'`},
		{"declared twice", "fields:\n  - {name: a, type: string}\n  - {name: a, type: int}\n", `3:12: fields[1].name: field "a" is declared twice (also at [0]); declare each field once`},
		{"default of the wrong type", "fields:\n  - {name: a, type: int, default: x}\n", `2:35: fields[0].default: "x" is not an integer (example: 10)`},
		{"default outside the enum", "fields:\n  - {name: a, type: string, enum: [x, y], default: z}\n", `2:52: fields[0].default: "z" is not one of "x", "y"`},
		{"required with a default", "fields:\n  - {name: a, type: int, required: true, default: 1}\n", `2:51: fields[0].default: a required field has no default: drop required or the default`},
		{"enum on an int", "fields:\n  - {name: a, type: int, enum: [x]}\n", `2:32: fields[0].enum: only string fields take an enum; this field is int`},
		{"object without fields", "fields:\n  - {name: a, type: object}\n", `2:5: fields[0].fields: an object field declares its members under fields; use type any for a free-form value`},
		{"fields on a string", "fields:\n  - {name: a, type: string, fields: []}\n", `2:37: fields[0].fields: only object and objects fields have fields; this field is string`},
		{"nested problem", "fields:\n  - name: a\n    type: objects\n    fields:\n      - {name: b, typ: int}\n", `5:19: fields[0].fields[0].typ: unknown key "typ" (did you mean "type"?); known keys: default, deprecated, doc, enum, example, fields, name, required, secret, type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseNested(t, nestedYAML, tt.manifest)
			ps := problems(t, err)
			for _, p := range ps {
				if filepath.Base(p.File) != "ledger.manifest.yaml" {
					t.Errorf("problem outside the manifest: %s", p)
					continue
				}
				p.File = ""
				if p.String() == tt.want {
					return
				}
			}
			t.Errorf("problem not reported:\nwant %s\ngot:\n%v", tt.want, err)
		})
	}
}

func TestManifestReadOnceAndReportedOnce(t *testing.T) {
	doc := nestedYAML + `  - name: ledger_eu
    type: external
    config:
      command: ledger-plugin
      manifest: ledger.manifest.yaml
      settings: {ledger: /data/eu.csv}
    emit:
      - {name: posted, type: com.acme.ledger.posted}
`
	_, err := parseNested(t, doc, "fields:\n  - {name: ledger, type: sting}\n")
	ps := problems(t, err)
	if len(ps) != 1 || !strings.HasSuffix(ps[0].File, "ledger.manifest.yaml") || ps[0].Field != "fields[0].type" {
		t.Errorf("problems = %v, want the manifest's one problem, once", err)
	}
}

func TestManifestMissing(t *testing.T) {
	_, err := parseNested(t, nestedYAML, "")
	ps := problems(t, err)
	dir := filepath.Dir(ps[0].File)
	want := config.Problem{
		File: ps[0].File, Line: 6, Column: 17, Field: "connectors[0].config.manifest",
		Message: `cannot read manifest "ledger.manifest.yaml": open ` + filepath.Join(dir, "ledger.manifest.yaml") + ": no such file or directory; relative paths start from " + dir,
	}
	if len(ps) != 1 || ps[0] != want {
		t.Errorf("problems = %v\nwant %v", err, want)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T, want *config.Error", err)
	}
}
