package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesTestOfExamples runs the rule tests the examples ship (the
// tests' registry has the custom connector's type).
func TestRulesTestOfExamples(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{name: "quickstart", want: "4 rule tests passed"},
		{name: "custom-connector", want: "3 rule tests passed"},
		{name: "retail", want: "9 rule tests passed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "..", "examples", tt.name)
			code, out, errOut := runCLI(t, "rules", "test", "-c", filepath.Join(dir, "tributary.yaml"), filepath.Join(dir, "tests", "rules.yaml"))
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
		})
	}
}

// TestRulesTest runs rule test files against sidecarConfig's rules: the
// exit code, and the diff a failing test prints.
func TestRulesTest(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfg, []byte(strings.NewReplacer("%s", "127.0.0.1:0").Replace(sidecarConfig)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		file string
		code int
		out  []string
	}{
		{name: "passing webhook and change", file: `connector: shop
tests:
  - name: placed
    webhook: {body: {id: A-1, total: 3}, headers: {x-delivery-id: d-1}}
    expect: [{type: com.example.order.placed, subject: A-1, partition_key: A-1, data: {order_id: A-1, total: 3}}]
  - name: as a change
    change: {op: message, payload: {id: A-2, total: 1.5}}
    expect: [{type: com.example.order.placed, data: {order_id: A-2, total: 1.5}}]
  - name: refused
    webhook: {body: '{"id": "A-3", "total": -2}'}
    expect: [{dead_letter: {reason: schema_violation, error_contains: minimum}}]
`, code: 0, out: []string{"ok   ", "3 rule tests passed"}},
		{name: "wrong data", file: `connector: shop
tests:
  - name: placed
    webhook: {body: {id: A-1, total: 3}}
    expect: [{type: com.example.order.placed, data: {order_id: A-1, total: 4}}]
`, code: 1, out: []string{"FAIL ", "placed", `  - ` + "      \"total\": 4", `  + ` + "      \"total\": 3", "1 of 1 rule tests failed"}},
		{name: "an event where a dead letter was expected", file: `connector: shop
tests:
  - name: placed
    webhook: {body: {id: A-1, total: 3}}
    expect: [{dead_letter: {reason: schema_violation}}]
`, code: 1, out: []string{"FAIL ", `"reason": "schema_violation"`, `"type": "com.example.order.placed"`}},
		{name: "no output expected", file: `connector: shop
tests:
  - name: placed
    webhook: {body: {id: A-1, total: 3}}
    expect: []
`, code: 1, out: []string{"FAIL "}},
		{name: "unknown connector", file: `connector: nope
tests:
  - {name: x, change: {op: create}, expect: []}
`, code: 2, out: []string{`no connector "nope"`}},
		{name: "both inputs", file: `connector: shop
tests:
  - {name: x, change: {op: create}, webhook: {body: "{}"}, expect: []}
`, code: 2, out: []string{"exactly one of change: and webhook:"}},
		{name: "unknown key", file: `connector: shop
tests:
  - {name: x, change: {op: create}, expected: []}
`, code: 2, out: []string{"expected"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "rules_test.yaml")
			if err := os.WriteFile(f, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "rules", "test", "-c", cfg, f)
			if code != tt.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.out {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
}
