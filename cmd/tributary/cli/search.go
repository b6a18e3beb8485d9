package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

type searchOptions struct {
	file    string
	sink    string
	types   []string
	subject string
	since   string
	until   string
	id      string
	limit   int
	json    bool
}

// newSearchCmd is `events search`: a query of the audit log an audit sink
// of the configuration keeps.
func newSearchCmd(reg *core.Registry) *cobra.Command {
	var o searchOptions
	cmd := &cobra.Command{
		Use:   "search -c FILE",
		Short: "Search the log an audit sink keeps of every event, by type, subject, time or id",
		Long: "Search the log an audit sink keeps of every event. Events print in time order, " +
			"the earliest --limit of those that match, as a table or (--json) as CloudEvents JSON, one per line.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return searchEvents(cmd.Context(), reg, o, cmd.OutOrStdout(), cmd.ErrOrStderr(), time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "config", "c", "tributary.yaml", "configuration file")
	f.StringVar(&o.sink, "sink", "", "the audit sink whose log to search (default: the configuration's only audit sink)")
	f.StringSliceVar(&o.types, "type", nil, "only events of this type (repeatable)")
	f.StringVar(&o.subject, "subject", "", "only events with this subject")
	f.StringVar(&o.since, "since", "", "only events whose time is at or after this: an RFC 3339 time, or a duration back from now such as 10m or 2h")
	f.StringVar(&o.until, "until", "", "only events whose time is before this: an RFC 3339 time, or a duration back from now")
	f.StringVar(&o.id, "id", "", "only the event with this id")
	f.IntVar(&o.limit, "limit", 100, "print at most this many events (0: every match)")
	f.BoolVar(&o.json, "json", false, "print CloudEvents JSON, one event per line, instead of a table")
	return cmd
}

// searchEvents prints the events of the audit log that o selects to out;
// notes for the reader go to errOut.
func searchEvents(ctx context.Context, reg *core.Registry, o searchOptions, out, errOut io.Writer, now time.Time) error {
	cfg, err := config.Load(o.file, reg)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return invalid(err)
		}
		return err
	}
	q, err := searchQuery(o, now)
	if err != nil {
		return invalid(err)
	}
	sc, err := auditSink(cfg, o.sink)
	if err != nil {
		return invalid(err)
	}
	acfg, err := audit.ParseConfig(sc.Config)
	if err != nil {
		return invalid(fmt.Errorf("sink %q: %w", sc.Name, err))
	}
	db, err := audit.Open(ctx, acfg, runtime.SinkStateDir(cfg.StateDir, sc.Name))
	if err != nil {
		return fmt.Errorf("sink %q: %w", sc.Name, err)
	}
	defer db.Close()
	if q.Limit > 0 {
		q.Limit++ // one more tells whether there are more
	}
	evs, err := audit.Search(ctx, db, q)
	if err != nil {
		return fmt.Errorf("sink %q: %w", sc.Name, err)
	}
	more := o.limit > 0 && len(evs) > o.limit
	if more {
		evs = evs[:o.limit]
	}
	if o.json {
		err = printJSON(out, evs)
	} else {
		err = printTable(out, evs)
	}
	if err != nil {
		return err
	}
	switch {
	case more:
		fmt.Fprintf(errOut, "the first %d matching events; more match: raise --limit, or narrow with --since\n", o.limit)
	case len(evs) == 0:
		fmt.Fprintf(errOut, "no event in the log of sink %q matches%s\n", sc.Name, typeHint(cfg, o.types))
	}
	return nil
}

// searchQuery reads the filters of o.
func searchQuery(o searchOptions, now time.Time) (audit.Query, error) {
	q := audit.Query{Types: o.types, Subject: o.subject, ID: o.id, Limit: o.limit}
	if o.limit < 0 {
		return q, fmt.Errorf("--limit %d: give a positive number, or 0 for every match", o.limit)
	}
	var err error
	if o.since != "" {
		if q.Since, err = parseInstant("--since", o.since, now); err != nil {
			return q, err
		}
	}
	if o.until != "" {
		if q.Until, err = parseInstant("--until", o.until, now); err != nil {
			return q, err
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return q, fmt.Errorf("--until %s is not after --since %s: no event can match", o.until, o.since)
	}
	return q, nil
}

// parseInstant reads a time flag: an RFC 3339 time, or a positive
// duration back from now.
func parseInstant(flag, s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%s %q: give a positive duration back from now, such as 10m or 2h", flag, s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: neither a duration back from now (10m, 2h30m) nor an RFC 3339 time (2026-01-02T15:04:05Z)", flag, s)
	}
	return t, nil
}

// auditSink returns the audit sink named name, or, when name is empty,
// the configuration's only audit sink.
func auditSink(cfg *config.Config, name string) (config.SinkConfig, error) {
	var audits []config.SinkConfig
	var names []string
	for _, sc := range cfg.Sinks {
		if sc.Type == audit.Type {
			audits = append(audits, sc)
			names = append(names, sc.Name)
		}
	}
	list := "none"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	if name != "" {
		i := slices.IndexFunc(cfg.Sinks, func(sc config.SinkConfig) bool { return sc.Name == name })
		switch {
		case i < 0:
			return config.SinkConfig{}, fmt.Errorf("--sink %q: %s has no such sink; its audit sinks: %s", name, cfg.File, list)
		case cfg.Sinks[i].Type != audit.Type:
			return config.SinkConfig{}, fmt.Errorf("--sink %q: a sink of type %s, not %s; the audit sinks of %s: %s", name, cfg.Sinks[i].Type, audit.Type, cfg.File, list)
		}
		return cfg.Sinks[i], nil
	}
	switch len(audits) {
	case 0:
		return config.SinkConfig{}, fmt.Errorf("%s has no audit sink: add one under sinks: (- name: audit_log, type: audit) and run the sidecar, which logs every event there", cfg.File)
	case 1:
		return audits[0], nil
	}
	return config.SinkConfig{}, fmt.Errorf("%s has several audit sinks (%s): choose one with --sink", cfg.File, list)
}

// printJSON prints evs as CloudEvents JSON, one per line, as tail does.
func printJSON(out io.Writer, evs []core.Event) error {
	for i := range evs {
		b, err := evs[i].MarshalStructured()
		if err != nil {
			return fmt.Errorf("encode event %s: %w", evs[i].ID, err)
		}
		if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}

// printTable prints evs as a table: time (UTC), type, subject, id.
func printTable(out io.Writer, evs []core.Event) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTYPE\tSUBJECT\tID")
	for _, e := range evs {
		t, subject := "-", "-"
		if !e.Time.IsZero() {
			t = e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		}
		if e.Subject != "" {
			subject = e.Subject
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t, e.Type, subject, e.ID)
	}
	return tw.Flush()
}

// typeHint says, when a --type is not a type the configuration declares,
// which declared type it may have meant.
func typeHint(cfg *config.Config, types []string) string {
	known := knownTypes(cfg)
	if len(known) == 0 {
		return ""
	}
	for _, t := range types {
		if slices.Contains(known, t) {
			continue
		}
		if s := config.SuggestEventType(t, known); s != "" {
			return fmt.Sprintf(" (--type %q is not a type %s declares; did you mean %q?)", t, cfg.File, s)
		}
		return fmt.Sprintf(" (--type %q is not a type %s declares)", t, cfg.File)
	}
	return ""
}
