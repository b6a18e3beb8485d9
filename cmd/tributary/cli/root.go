// Package cli is the tributary command: the sidecar (`run`) and its tools.
// A custom build imports it with its own connectors compiled in:
//
//	package main
//
//	import (
//		"os"
//
//		"github.com/tributary/tributary/cmd/tributary/cli"
//		_ "github.com/tributary/tributary/connectors/all"
//		_ "example.com/acme/connectors/soap"
//		"github.com/tributary/tributary/core"
//	)
//
//	func main() { os.Exit(cli.Main(core.DefaultRegistry, os.Args[1:])) }
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/core"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/tributary/tributary/cmd/tributary/cli.Version=v1.2.3".
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitInvalid = 2 // the configuration is invalid
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func invalid(err error) error { return &exitError{code: ExitInvalid, err: err} }

// Main runs the command with args against reg and returns the exit code.
func Main(reg *core.Registry, args []string) int {
	return Run(reg, args, os.Stdout, os.Stderr)
}

// Run is Main with explicit output streams.
func Run(reg *core.Registry, args []string, stdout, stderr io.Writer) int {
	return RunContext(context.Background(), reg, args, stdout, stderr)
}

// RunContext is Run bounded by ctx: cancelling it stops a long-running
// command (`run`, `events tail`) as SIGTERM does.
func RunContext(ctx context.Context, reg *core.Registry, args []string, stdout, stderr io.Writer) int {
	root := New(reg)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "error:", err)
	return ExitError
}

// New returns the root command.
func New(reg *core.Registry) *cobra.Command {
	root := &cobra.Command{
		Use:           "tributary",
		Short:         "Turn changes in legacy systems into canonical domain events on one shared stream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(reg),
		newValidateCmd(reg),
		newConnectorsCmd(reg),
		newEventsCmd(reg),
		newSchemaCmd(reg),
		NewPluginCmd(reg),
		withAsyncAPI(newCatalogCmd(reg), reg),
		newTraceCmd(reg),
		newLifecyclesCmd(reg),
		newRulesCmd(reg),
		newDoctorCmd(reg),
		newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := Version
			goVersion := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tributary %s (%s)\n", v, goVersion)
			return nil
		},
	}
}
