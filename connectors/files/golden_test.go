package files_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/core"
)

var update = flag.Bool("update", false, "rewrite the expected.json files of the golden tests")

// goldenChange is one change as expected.json holds it.
type goldenChange struct {
	// N is the record's number in its position.
	N          int            `json:"n"`
	Line       any            `json:"line"`
	Key        map[string]any `json:"key"`
	After      map[string]any `json:"after"`
	ParseError any            `json:"parse_error,omitempty"`
	Raw        *string        `json:"raw,omitempty"`
	Invalid    string         `json:"invalid,omitempty"`
}

// TestGolden reads each testdata/golden/<case>/input.* with the settings of
// its config.yaml and compares the changes with its expected.json: every
// physical record becomes a change, or a parse error with its bytes and
// line. Run with -update to rewrite the expectations.
func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*/config.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			values := map[string]any{}
			if err := yaml.Unmarshal(b, &values); err != nil {
				t.Fatalf("decode %s: %v", f, err)
			}
			inputs, _ := filepath.Glob(filepath.Join(dir, "input.*"))
			if len(inputs) != 1 {
				t.Fatalf("%s holds %d input.* files, want 1", dir, len(inputs))
			}
			drop := t.TempDir()
			copyFile(t, inputs[0], filepath.Join(drop, filepath.Base(inputs[0])))
			values["dir"], values["stable_for"], values["after"] = drop, "1ms", "keep"
			s := newSource(t, values)
			open(t, s, testEnv(t), core.Position{})

			var want []goldenChange
			wantFile := filepath.Join(dir, "expected.json")
			var got []core.Change
			if *update {
				got = settle(t, s, 500*time.Millisecond)
			} else {
				wb, err := os.ReadFile(wantFile)
				if err != nil {
					t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
				}
				if err := json.Unmarshal(wb, &want); err != nil {
					t.Fatalf("decode %s: %v", wantFile, err)
				}
				got = readN(t, s, len(want))
				got = append(got, settle(t, s, 50*time.Millisecond)...)
			}
			out := make([]goldenChange, 0, len(got))
			for _, ch := range got {
				var pos struct {
					N int `json:"n"`
				}
				if err := json.Unmarshal(ch.Position.Data, &pos); err != nil {
					t.Fatalf("position %s: %v", ch.Position, err)
				}
				g := goldenChange{N: pos.N, Line: ch.Meta["line"], Key: ch.Key, After: ch.After, ParseError: ch.Meta["parse_error"], Invalid: ch.Invalid}
				if ch.Raw != nil {
					raw := string(ch.Raw)
					g.Raw = &raw
					if ch.Meta["raw"] != raw {
						t.Errorf("line %v: meta.raw %q differs from the change's raw bytes %q", g.Line, ch.Meta["raw"], raw)
					}
				}
				if (ch.Raw != nil) != (g.ParseError != nil) {
					t.Errorf("line %v: raw bytes %q with parse error %v: a record that does not parse, and only such a record, keeps its bytes", g.Line, ch.Raw, g.ParseError)
				}
				out = append(out, g)
			}
			gb, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			gb = append(gb, '\n')
			if *update {
				if err := os.WriteFile(wantFile, gb, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wb, _ := os.ReadFile(wantFile)
			if !bytes.Equal(gb, wb) {
				t.Errorf("changes differ from %s (run with -update to accept):\ngot:\n%s", wantFile, gb)
			}
		})
	}
}
