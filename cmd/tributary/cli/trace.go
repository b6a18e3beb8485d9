package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
)

// newTraceCmd is `trace ENTITY ID`: an instance's current state and its
// timeline, asked of the sidecar that answers on the configuration's
// admin address (it holds every instance's state in memory), else read
// from the lifecycle store's files.
func newTraceCmd(reg *core.Registry) *cobra.Command {
	var file string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "trace ENTITY ID -c FILE [--json]",
		Short: "Show where an entity instance is (order A-1001) and every event of its timeline",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			if _, err := declaredEntity(cfg, args[0]); err != nil {
				return err
			}
			in, asked, err := traceFromSidecar(cmd.Context(), cfg.Admin.Address, args[0], args[1])
			if !asked {
				var st *lifecycle.Store
				st, err = lifecycle.OpenStoreReadOnly(cmd.Context(), filepath.Join(lifecycleDir(cfg), lifecycle.StoreFile))
				if err != nil {
					return err
				}
				defer st.Close()
				in, err = st.Trace(cmd.Context(), args[0], args[1])
			}
			if errors.Is(err, lifecycle.ErrNotFound) {
				return fmt.Errorf("%w: no event of it has reached the lifecycle tracker yet", err)
			}
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(in)
			}
			return printTrace(cmd.OutOrStdout(), in, time.Now())
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the instance and its timeline as JSON")
	return cmd
}

// traceFromSidecar asks the sidecar answering on addr for an instance.
// asked is false when none answers, or it cannot answer yet: the caller
// then reads the store's files, which takes longer (the log after the
// latest snapshot is scanned).
func traceFromSidecar(ctx context.Context, addr, entity, id string) (in *lifecycle.Instance, asked bool, err error) {
	if addr == "" {
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := "http://" + addr + "/v1/entities/" + url.PathEscape(entity) + "/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, nil // no sidecar
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		in = &lifecycle.Instance{}
		if err := json.NewDecoder(resp.Body).Decode(in); err != nil {
			return nil, true, fmt.Errorf("trace %s %s: the sidecar on %s answered: %w", entity, id, addr, err)
		}
		return in, true, nil
	case http.StatusNotFound:
		return nil, true, fmt.Errorf("%s %q: %w", entity, id, lifecycle.ErrNotFound)
	}
	return nil, false, nil
}

// printTrace prints in as a heading and a table of its timeline.
func printTrace(w io.Writer, in *lifecycle.Instance, now time.Time) error {
	switch {
	case in.State == "":
		fmt.Fprintf(w, "%s %s: no state yet (its events wait in the reordering window)\n", in.Entity, in.ID)
	default:
		stuck := ""
		if in.Stuck {
			stuck = ", stuck"
		}
		fmt.Fprintf(w, "%s %s: %s since %s (%s%s)\n", in.Entity, in.ID, in.State, in.EnteredAt.Format(time.RFC3339), now.Sub(in.EnteredAt).Round(time.Second), stuck)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSOURCE\tEVENT ID\tVERDICT\tPOSITION")
	for _, s := range in.Timeline {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Time.Format(time.RFC3339Nano), s.Type, s.Source, s.EventID, s.Verdict, s.Position)
	}
	return tw.Flush()
}
