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
					var de *rules.DeadLetterError
					switch {
					case errors.As(r.Err, &re):
						g.Kind = "rule"
					case errors.As(r.Err, &ve):
						g.Kind = "validation"
					case errors.As(r.Err, &de):
						g.Kind = "dead_letter"
					default:
						t.Errorf("rule %s: error %v is not a RuleError, a ValidationError nor a DeadLetterError", r.Rule, r.Err)
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

// TestInvalidChangeIsDeadLettered checks that a change its source could
// not read runs no rule and yields one dead letter carrying its reason,
// even from a connector without rules.
func TestInvalidChangeIsDeadLettered(t *testing.T) {
	tests := []struct {
		name  string
		rules []core.Rule
	}{
		{name: "with rules", rules: []core.Rule{
			{Name: "any_change", Type: "com.acme.thing.seen", Data: "after"},
			{Name: "parse_errors", When: "meta.parse_error != nil", Type: "com.acme.thing.unreadable"},
		}},
		{name: "without rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := rules.Compile("drop", tt.rules, nil)
			if err != nil {
				t.Fatal(err)
			}
			ch := &core.Change{
				Op:       core.OpCreate,
				Meta:     map[string]any{"line": int64(3), "parse_error": "line 3: broken"},
				Raw:      []byte(`S002,"MS-2`),
				Invalid:  "line 3: broken",
				Position: core.Position{Version: 1, Data: []byte("3")},
			}
			got := set.Apply(ch)
			if len(got) != 1 {
				t.Fatalf("Apply gave %d results, want the one dead letter: %+v", len(got), got)
			}
			var de *rules.DeadLetterError
			if got[0].Rule != rules.InvalidRule || got[0].Event != nil || !errors.As(got[0].Err, &de) {
				t.Fatalf("result = %+v, want rule %q with a *DeadLetterError", got[0], rules.InvalidRule)
			}
			if de.Reason != "line 3: broken" || de.Connector != "drop" {
				t.Errorf("dead letter = %+v, want the change's Invalid as its reason", de)
			}
		})
	}
}
