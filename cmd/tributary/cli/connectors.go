package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
)

func newConnectorsCmd(reg *core.Registry) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "connectors",
		Short: "List every connector, stream and sink type with its configuration fields",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if asJSON {
				type entry struct {
					Kind    string       `json:"kind"`
					Type    string       `json:"type"`
					Summary string       `json:"summary"`
					Fields  []core.Field `json:"fields"`
				}
				var list []entry
				for _, s := range reg.Sources() {
					list = append(list, entry{"source", s.Type, s.Summary, s.Fields})
				}
				for _, s := range reg.Streams() {
					list = append(list, entry{"stream", s.Type, s.Summary, s.Fields})
				}
				for _, s := range reg.Sinks() {
					list = append(list, entry{"sink", s.Type, s.Summary, s.Fields})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			fmt.Fprintln(out, "SOURCES")
			for _, s := range reg.Sources() {
				printSpec(out, s.Type, s.Summary, s.Fields)
			}
			fmt.Fprintln(out, "STREAMS")
			for _, s := range reg.Streams() {
				printSpec(out, s.Type, s.Summary, s.Fields)
			}
			fmt.Fprintln(out, "SINKS")
			for _, s := range reg.Sinks() {
				printSpec(out, s.Type, s.Summary, s.Fields)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printSpec(w io.Writer, typ, summary string, fields []core.Field) {
	fmt.Fprintf(w, "\n  %s\n      %s\n", typ, summary)
	printFields(w, fields, "      ")
	fmt.Fprintln(w)
}

func printFields(w io.Writer, fields []core.Field, indent string) {
	for _, f := range fields {
		var attrs []string
		attrs = append(attrs, string(f.Type))
		if f.Required {
			attrs = append(attrs, "required")
		}
		if f.Default != nil {
			attrs = append(attrs, fmt.Sprintf("default %v", f.Default))
		}
		if len(f.Enum) > 0 {
			attrs = append(attrs, "one of "+strings.Join(f.Enum, "|"))
		}
		if f.Secret {
			attrs = append(attrs, "secret")
		}
		if f.Deprecated != "" {
			attrs = append(attrs, "deprecated: "+f.Deprecated)
		}
		fmt.Fprintf(w, "%s%-22s (%s)\n", indent, f.Name, strings.Join(attrs, ", "))
		if f.Doc != "" {
			fmt.Fprintf(w, "%s    %s\n", indent, f.Doc)
		}
		if len(f.Fields) > 0 {
			printFields(w, f.Fields, indent+"    ")
		}
	}
}

func newSchemaCmd(reg *core.Registry) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the configuration file (for editor completion)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := config.Schema(reg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
}
