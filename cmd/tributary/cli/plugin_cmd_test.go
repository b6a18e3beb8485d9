package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core/servicetest"
)

// TestPluginTestCommand builds the binary and runs `tributary plugin test`
// as a plugin author does: against the Python example plugin, which must
// pass, and against the same plugin with one defect
// (testdata/plugin/lossy_orders.py resumes five rows past its checkpoint),
// which must fail, exit 1 and name the check that caught it.
func TestPluginTestCommand(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if servicetest.Required() {
			t.Fatalf("python3 not found in PATH (%s=1): install Python 3 to test `plugin test` against the Python example", servicetest.EnvRequire)
		}
		t.Skip("python3 not found in PATH: install Python 3 to test `plugin test` against the Python example; `make test` requires it")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tributary")
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	if out, err := exec.CommandContext(bctx, "go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	example, err := filepath.Abs("../../../examples/plugin-python/orders_plugin.py")
	if err != nil {
		t.Fatal(err)
	}
	lossy, err := filepath.Abs("testdata/plugin/lossy_orders.py")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tributary.yaml")
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "version: 1\nstate_dir: %s\nconnectors:\n", filepath.Join(dir, "state"))
	for _, c := range []struct{ name, script string }{{"legacy_orders", example}, {"lossy_orders", lossy}} {
		// A relative file lives in each check's state directory; the
		// heartbeat timeout leaves room for a slow interpreter start.
		fmt.Fprintf(&yaml, `  - name: %s
    type: plugin
    config:
      command: %s
      args: [%s]
      transport: jsonl
      heartbeat_timeout: 10s
      config: {file: orders.csv, poll_interval_ms: 10}
    emit:
      - {name: order_accepted, type: com.acme.order.accepted, data: {order_id: key.id}}
`, c.name, python, c.script)
	}
	if err := os.WriteFile(cfg, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string
		notOut     []string
		wantStderr string
	}{
		{
			name: "the example passes", args: []string{"--connector", "legacy_orders"}, wantCode: 0,
			wantOut: []string{
				"PASS legacy_orders/Conformance/OpenClose (",
				"PASS legacy_orders/Conformance/ReopenAfterClose (",
				"PASS legacy_orders/Conformance/ResumeAfterPartialAck (",
				"PASS legacy_orders/Conformance/ThroughRuntime (",
				"PASS legacy_orders/BadConfigRejected (",
				"PASS legacy_orders/CrashRestart (",
				"PASS legacy_orders (",
			},
			notOut: []string{"FAIL", "SKIP", "no tests to run"},
		},
		{
			name: "a plugin that loses changes after a partial ack fails", args: []string{"--connector", "lossy_orders"}, wantCode: 1,
			wantOut: []string{
				"PASS lossy_orders/Conformance/ReadAck (",
				"FAIL lossy_orders/Conformance/ResumeAfterPartialAck (",
				"     5 of the 10 changes read but not acked before Close were lost: reopening from v1:10 did not read them again",
				"FAIL lossy_orders (",
			},
			wantStderr: "lossy_orders/Conformance/ResumeAfterPartialAck",
		},
		{
			name: "an undeclared capability skips its check with the reason", args: []string{"--connector", "legacy_orders", "--capabilities", "ordered"}, wantCode: 0,
			wantOut: []string{
				"SKIP legacy_orders/Conformance/ResumeAfterPartialAck (",
				"     connector does not resume from a position: not declared with --capabilities resume",
				"PASS legacy_orders/Conformance/ReadAck (",
				"PASS legacy_orders (",
			},
			notOut: []string{"FAIL"},
		},
		{
			name: "an unknown connector is a usage error", args: []string{"--connector", "nope"}, wantCode: 2,
			wantStderr: `has no connector named "nope"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"plugin", "test", "-c", cfg, "--timeout", "5s"}, tt.args...)
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, n := range tt.notOut {
				if strings.Contains(stdout.String()+stderr.String(), n) {
					t.Errorf("output has %q", n)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q", tt.wantStderr)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}

// linksTesting names the packages of the binary's build that may import
// package testing, with why. hashicorp/go-plugin (the gRPC plugin
// transport) has a testing.go in its main package that imports it.
var linksTesting = map[string]string{
	"github.com/hashicorp/go-plugin": "its testing.go helpers, in its main package",
}

// TestBinaryRunsChecksWithoutPackageTesting checks that no package of
// the sidecar's build, the conformance kit included, imports package
// testing: `plugin test` runs the kit's checks as values.
func TestBinaryRunsChecksWithoutPackageTesting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "..").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		if !strings.Contains(" "+imports+" ", " testing ") {
			continue
		}
		if _, ok := linksTesting[pkg]; !ok {
			t.Errorf("%s imports package testing, which the tributary binary must not link", pkg)
		}
	}
}
