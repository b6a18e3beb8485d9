package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/connectors/plugin/plugintest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// NewPluginCmd returns the `plugin` command and its `test` subcommand.
func NewPluginCmd(reg *core.Registry) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Work with connector plugins",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPluginTestCmd(reg))
	return cmd
}

func newPluginTestCmd(reg *core.Registry) *cobra.Command {
	var file, only, caps string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test -c FILE [--connector NAME]",
		Short: "Run the conformance kit against the configured connectors, compiled in or plugins",
		Long: `Runs the conformance kit against each connector of FILE (or only NAME):
open and close within the deadline, reads that stop on cancel, acks,
resume after a partial ack with nothing lost, no goroutine leaks, a run
through the runtime, a bad config rejected with a field error and, for
plugins, a crash of the plugin process followed by a restart from the last
committed position.

The checks that need new changes ask the connector to produce them: a
plugin that announces the produce capability, or a compiled-in source that
implements plugin.Producer. Without it, only OpenClose, CloseWithoutOpen,
ReadStopsOnCancel and BadConfigRejected run; the others are skipped with
the reason. Checks run against the systems the configuration names: point
it at test systems. Prints one line per check; exits 1 when any failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, reg)
			if err != nil {
				var cerr *config.Error
				if errors.As(err, &cerr) {
					for _, p := range cerr.Problems {
						fmt.Fprintln(cmd.ErrOrStderr(), p)
					}
					return invalid(fmt.Errorf("%s: %d problems", file, len(cerr.Problems)))
				}
				return invalid(err)
			}
			capabilities, err := parseCapabilities(caps)
			if err != nil {
				return invalid(err)
			}
			var targets []plugintest.Target
			for _, c := range cfg.Connectors {
				if only != "" && c.Name != only {
					continue
				}
				spec, ok := reg.Source(c.Type)
				if !ok {
					return invalid(fmt.Errorf("connector %q: unknown type %q", c.Name, c.Type))
				}
				targets = append(targets, plugintest.Target{
					Name: c.Name, Spec: spec, Config: c.Config.Values,
					Capabilities: capabilities, Timeout: timeout,
				})
			}
			if len(targets) == 0 {
				if only != "" {
					return invalid(fmt.Errorf("%s has no connector named %q", file, only))
				}
				return invalid(fmt.Errorf("%s has no connectors to test", file))
			}
			failed, err := runChecks(targets, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if failed > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("%d checks failed", failed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().StringVar(&only, "connector", "", "test only the connector with this name")
	cmd.Flags().StringVar(&caps, "capabilities", "resume,ordered", "what the connectors promise: resume, ordered (comma-separated, or none)")
	cmd.Flags().DurationVar(&timeout, "timeout", 15*time.Second, "bound of each wait within a check")
	return cmd
}

func parseCapabilities(s string) (conformance.Capabilities, error) {
	c := conformance.Capabilities{
		ResumeReason:  "not declared with --capabilities resume",
		OrderedReason: "not declared with --capabilities ordered",
	}
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "resume":
			c.Resume = true
		case "ordered":
			c.Ordered = true
		case "", "none":
		default:
			return c, fmt.Errorf("--capabilities: unknown capability %q (known: resume, ordered)", f)
		}
	}
	return c, nil
}

// runMu serialises runs: the testing package reports on the process's
// standard output, which a run borrows.
var runMu sync.Mutex

var resultRe = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(([^)]*)\)`)

// runChecks runs the kit against targets with the testing package's
// runner and prints one line per check to out, with the messages of
// failed and skipped checks below it. It returns the number of failures.
func runChecks(targets []plugintest.Target, out io.Writer) (int, error) {
	runMu.Lock()
	defer runMu.Unlock()
	testing.Init()
	if err := flag.Set("test.v", "true"); err != nil {
		return 0, fmt.Errorf("set up the test runner: %w", err)
	}
	if !flag.Parsed() {
		_ = flag.CommandLine.Parse(nil)
	}
	tests := make([]testing.InternalTest, len(targets))
	for i, tg := range targets {
		tests[i] = testing.InternalTest{Name: tg.Name, F: func(t *testing.T) { plugintest.Run(t, tg) }}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("capture the test runner's output: %w", err)
	}
	failed := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "=== ") {
				continue
			}
			if m := resultRe.FindStringSubmatch(line); m != nil {
				if m[1] == "FAIL" {
					failed++
				}
				fmt.Fprintf(out, "%s %s (%s)\n", m[1], m[2], m[3])
				continue
			}
			if s := strings.TrimSpace(line); s != "" && s != "PASS" && s != "FAIL" {
				fmt.Fprintf(out, "     %s\n", s)
			}
		}
	})
	stdout := os.Stdout
	os.Stdout = w
	ok := testing.RunTests(func(string, string) (bool, error) { return true, nil }, tests)
	os.Stdout = stdout
	w.Close()
	wg.Wait()
	r.Close()
	if !ok && failed == 0 {
		failed = 1
	}
	return failed, nil
}
