package rules_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the expected.json files of the golden tests")

// goldenRules is the rules.yaml of a golden case.
type goldenRules struct {
	Catalog []core.EventType `yaml:"catalog"`
	Emit    []core.Rule      `yaml:"emit"`
}

// goldenResult is one Result as expected.json holds it.
type goldenResult struct {
	Rule  string      `json:"rule"`
	Event *core.Event `json:"event,omitempty"`
	Error string      `json:"error,omitempty"`
	Kind  string      `json:"error_kind,omitempty"`
	Data  any         `json:"data,omitempty"`
}

func readChange(t *testing.T, path string) *core.Change {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	var ch core.Change
	if err := d.Decode(&ch); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return &ch
}

func readRules(t *testing.T, path string) (goldenRules, *catalog.Catalog) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gr goldenRules
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&gr); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	cat, err := catalog.New(gr.Catalog, filepath.Dir(path))
	if err != nil {
		t.Fatalf("catalog of %s: %v", path, err)
	}
	return gr, cat
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/change.json")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			ch := readChange(t, f)
			gr, cat := readRules(t, filepath.Join(dir, "rules.yaml"))
			set, err := rules.Compile("erp_orders", gr.Emit, cat)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got := []goldenResult{}
			for _, r := range set.Apply(ch) {
				g := goldenResult{Rule: r.Rule, Event: r.Event}
				if r.Err != nil {
					g.Error = r.Err.Error()
					g.Data = r.Data
					var re *rules.RuleError
					var ve *catalog.ValidationError
					switch {
					case errors.As(r.Err, &re):
						g.Kind = "rule"
					case errors.As(r.Err, &ve):
						g.Kind = "validation"
					default:
						t.Errorf("rule %s: error %v is neither a RuleError nor a ValidationError", r.Rule, r.Err)
					}
					if r.Event != nil {
						t.Errorf("rule %s: an event comes with error %v", r.Rule, r.Err)
					}
				} else if err := r.Event.Validate(); err != nil {
					t.Errorf("rule %s: invalid event: %v", r.Rule, err)
				}
				got = append(got, g)
			}
			b, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			b = append(b, '\n')
			want := filepath.Join(dir, "expected.json")
			if *update {
				if err := os.WriteFile(want, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wb, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(b, wb) {
				t.Errorf("results differ from %s (run with -update to accept):\ngot:\n%s", want, b)
			}
		})
	}
}
