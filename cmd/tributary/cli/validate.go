package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

// validateReport is the output of validate --json. Its keys, and those of
// each problem and warning (config.Problem), are lower-case snake_case.
type validateReport struct {
	File     string           `json:"file"`
	Valid    bool             `json:"valid"`
	Problems []config.Problem `json:"problems"`
	Warnings []config.Problem `json:"warnings"`
}

func newValidateCmd(reg *core.Registry) *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "validate -c FILE",
		Short: "Check a configuration offline: exit 0 when valid, 2 when not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, reg)
			rep := validateReport{File: file, Valid: err == nil, Problems: []config.Problem{}, Warnings: []config.Problem{}}
			var cerr *config.Error
			switch {
			case err == nil:
				rep.Warnings = append(rep.Warnings, cfg.Warnings...)
			case errors.As(err, &cerr):
				rep.Problems = cerr.Problems
			default:
				rep.Problems = []config.Problem{{File: file, Message: err.Error()}}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Warnings {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", p)
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(cmd.ErrOrStderr(), p)
				}
				if rep.Valid {
					fmt.Fprintf(out, "%s: valid (%s, %s)\n", file, plural(len(cfg.Connectors), "connector"), plural(len(cfg.Catalog), "event type"))
				}
			}
			if !rep.Valid {
				return &exitError{code: ExitInvalid, err: fmt.Errorf("%s: %s", file, plural(len(rep.Problems), "problem"))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// plural formats a count with its noun, adding "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
