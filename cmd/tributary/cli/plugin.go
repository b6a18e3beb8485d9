package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	connplugin "github.com/tributary/tributary/connectors/plugin"
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
	var file, only, onlySink, caps string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "test -c FILE [--connector NAME | --sink NAME]",
		Short: "Run the conformance kit against the configured connectors, compiled in or plugins, and sink plugins",
		Long: `Runs the conformance kit against each connector of FILE (or only NAME):
open and close within the deadline, reads that stop on cancel, acks,
Close then Open again on the same connector (as the sidecar does after an
error or a restart), resume after a partial ack with nothing lost, no
goroutine leaks, a run through the runtime, a bad config rejected with a
field error and, for plugins, a crash of the plugin process followed by a
restart from the last committed position.

The checks that need new changes ask the connector to produce them: a
plugin that announces the produce capability, or a compiled-in source that
implements plugin.Producer. Without it, only OpenClose, CloseWithoutOpen,
ReadStopsOnCancel and BadConfigRejected run; the others are skipped with
the reason. Checks run against the systems the configuration names: point
it at test systems.

Each sink of type plugin (or only the sink NAME) runs the sink kit:
open and close, one result per delivery, order per key under concurrent
writes, a failed delivery holding its key, retry then success, a refused
delivery dead-lettered through the runtime, writes that stop on cancel,
no goroutine leaks, and a crash between write and offset commit delivered
again. The kit sees what the target took, and stages its failures,
through the plugin's target test hooks (plugin.SinkTarget, the "target"
capability); a plugin without them has its sink checks skipped with the
reason. Compiled-in sinks run the kit in their own packages' tests.

Prints one line per check as it ends (PASS, FAIL or SKIP, its name and
duration), the reason below a failed or skipped check, and a line per
connector. Exits 0 when every check passed or was skipped, 1 when any
failed (naming the failed checks on stderr), 2 when FILE is invalid.`,
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
			var suites []suite
			for _, c := range cfg.Connectors {
				if (only != "" && c.Name != only) || onlySink != "" {
					continue
				}
				spec, ok := reg.Source(c.Type)
				if !ok {
					return invalid(fmt.Errorf("connector %q: unknown type %q", c.Name, c.Type))
				}
				tg := plugintest.Target{
					Name: c.Name, Spec: spec, Config: c.Config.Values,
					Capabilities: capabilities, Timeout: timeout,
				}
				suites = append(suites, suite{name: c.Name, checks: func() ([]conformance.Check, func()) { return plugintest.Checks(tg), func() {} }})
			}
			for _, sc := range cfg.Sinks {
				if (onlySink != "" && sc.Name != onlySink) || only != "" {
					continue
				}
				if sc.Type != connplugin.Type {
					if onlySink != "" {
						return invalid(fmt.Errorf("sink %q is of type %q: only sinks of type plugin are tested here; a compiled-in sink runs the sink kit in its package's tests", sc.Name, sc.Type))
					}
					continue
				}
				tg := plugintest.SinkTarget{Name: sc.Name, Spec: connplugin.SinkSpec(), Config: sc.Config.Values, Timeout: timeout}
				suites = append(suites, suite{name: sc.Name, checks: func() ([]conformance.Check, func()) { return plugintest.SinkChecks(tg) }})
			}
			if len(suites) == 0 {
				switch {
				case only != "":
					return invalid(fmt.Errorf("%s has no connector named %q", file, only))
				case onlySink != "":
					return invalid(fmt.Errorf("%s has no sink named %q", file, onlySink))
				}
				return invalid(fmt.Errorf("%s has no connectors or sink plugins to test", file))
			}
			failed, total := runChecks(suites, cmd.OutOrStdout())
			if len(failed) > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("%d of %d checks failed: %s", len(failed), total, strings.Join(failed, ", "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().StringVar(&only, "connector", "", "test only the connector with this name")
	cmd.Flags().StringVar(&onlySink, "sink", "", "test only the sink plugin with this name")
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

// runChecks runs every check of each target in turn and prints a line per
// check as it ends ("PASS orders/Conformance/ReadAck (0.14s)"), with the
// reason of a failed or skipped check and a failed check's log indented
// below it, then a line per target. It returns the names of the failed
// checks and how many checks ran.
func runChecks(suites []suite, out io.Writer) (failed []string, total int) {
	for _, su := range suites {
		start := time.Now()
		ok := true
		checks, stop := su.checks()
		for _, c := range checks {
			r := c.Run()
			total++
			name := su.name + "/" + r.Name
			fmt.Fprintf(out, "%s %s (%s)\n", strings.ToUpper(string(r.Status)), name, seconds(r.Duration))
			if r.Status == conformance.Passed {
				continue
			}
			lines := strings.Split(r.Reason, "\n")
			if r.Status == conformance.Failed {
				ok = false
				failed = append(failed, name)
				lines = append(lines, r.Log...)
			}
			for _, l := range lines {
				if l = strings.TrimRight(l, " \t"); l != "" {
					fmt.Fprintf(out, "     %s\n", l)
				}
			}
		}
		stop()
		status := "PASS"
		if !ok {
			status = "FAIL"
		}
		fmt.Fprintf(out, "%s %s (%s)\n", status, su.name, seconds(time.Since(start)))
	}
	return failed, total
}

// suite is the checks of one connector or sink plugin, made when they
// run, and what to stop after them.
type suite struct {
	name   string
	checks func() ([]conformance.Check, func())
}

// seconds formats d as go test does: 1.23s.
func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
