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

// TestPluginTestCommandSinks runs `tributary plugin test` against sink
// plugins as a plugin author does: the Python example ledger sink, which
// must pass the sink kit, and the same sink with one defect
// (testdata/plugin/forgetful_ledger.py reports postings delivered that it
// never wrote), which must fail, exit 1 and name the checks that caught
// it.
func TestPluginTestCommandSinks(t *testing.T) {
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
	example, err := filepath.Abs("../../../examples/plugin-python-sink/ledger_sink.py")
	if err != nil {
		t.Fatal(err)
	}
	forgetful, err := filepath.Abs("testdata/plugin/forgetful_ledger.py")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tributary.yaml")
	var yaml strings.Builder
	fmt.Fprintf(&yaml, "version: 1\nstate_dir: %s\nsinks:\n", filepath.Join(dir, "state"))
	for _, s := range []struct{ name, script string }{{"ledger", example}, {"forgetful_ledger", forgetful}} {
		fmt.Fprintf(&yaml, `  - name: %s
    type: plugin
    events: [com.example.invoice.issued]
    config:
      command: %s
      args: [%s]
      transport: jsonl
      heartbeat_timeout: 10s
      config: {file: %s, require_account: false}
`, s.name, python, s.script, filepath.Join(dir, s.name+".jsonl"))
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
			name: "the example passes", args: []string{"--sink", "ledger"}, wantCode: 0,
			wantOut: []string{
				"PASS ledger/SinkConformance/OpenClose (",
				"PASS ledger/SinkConformance/OrderPerKeyUnderConcurrency (",
				"PASS ledger/SinkConformance/NoDeliveryAfterFailedKey (",
				"PASS ledger/SinkConformance/RetryThenSuccess (",
				"PASS ledger/SinkConformance/RedeliveryAfterCrash (",
				"PASS ledger/SinkConformance/DeadLetterThroughRuntime (",
				"SKIP ledger/SinkConformance/CancelWriteInFlight (",
				"PASS ledger (",
			},
			notOut: []string{"FAIL"},
		},
		{
			name: "a sink that reports deliveries it never made fails", args: []string{"--sink", "forgetful_ledger"}, wantCode: 1,
			wantOut: []string{
				"FAIL forgetful_ledger/SinkConformance/WriteResults (",
				"FAIL forgetful_ledger (",
			},
			wantStderr: "forgetful_ledger/SinkConformance/WriteResults",
		},
		{
			name: "an unknown sink is a usage error", args: []string{"--sink", "nope"}, wantCode: 2,
			wantStderr: `has no sink named "nope"`,
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
				if strings.Contains(stdout.String(), n) {
					t.Errorf("output has %q", n)
				}
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantStderr)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
