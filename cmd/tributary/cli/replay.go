package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

type replayOptions struct {
	file    string
	sink    string
	types   []string
	subject string
	since   string
	until   string
	dryRun  bool
}

// newReplayCmd is `events replay`: events delivered again to one sink.
func newReplayCmd(reg *core.Registry) *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay -c FILE --sink NAME",
		Short: "Deliver chosen events again to one sink, from the stream or the audit log, without moving the sink's offsets",
		Long: "Deliver the events the filters choose again to one sink, through its own events, when, map, retries and key order, " +
			"marked as replays. They come from the stream (read up to what it holds now) and, for those it no longer holds, " +
			"from the configuration's audit log. The sink's consumer group is not touched. The replay runs in this process " +
			"and returns once every event is delivered, skipped or dead-lettered; it is recorded in the audit log. " +
			"With --dry-run it only lists the events it would deliver. A running sidecar replays with POST /v1/sinks/NAME/replay.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return replayEvents(ctx, reg, o, cmd.OutOrStdout(), cmd.ErrOrStderr(), time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "config", "c", "tributary.yaml", "configuration file")
	f.StringVar(&o.sink, "sink", "", "the sink to deliver the events to again (required)")
	f.StringSliceVar(&o.types, "type", nil, "only events of this type (repeatable)")
	f.StringVar(&o.subject, "subject", "", "only events with this subject")
	f.StringVar(&o.since, "since", "", "only events whose time is at or after this: an RFC 3339 time, or a duration back from now such as 10m or 2h")
	f.StringVar(&o.until, "until", "", "only events whose time is before this: an RFC 3339 time, or a duration back from now")
	f.BoolVar(&o.dryRun, "dry-run", false, "list the events that would be delivered, and their count, and deliver nothing")
	return cmd
}

// replayEvents runs the replay o asks for in this process: it builds the
// sidecar from the file, opens its stream and the sink, replays, records
// the replay and closes them. The report goes to out.
func replayEvents(ctx context.Context, reg *core.Registry, o replayOptions, out, errOut io.Writer, now time.Time) error {
	if o.sink == "" {
		return invalid(errors.New("--sink is required: name the sink to deliver the events to again"))
	}
	f, err := replayFilter(o.since, o.until, o.types, o.subject, now)
	if err != nil {
		return invalid(err)
	}
	f.DryRun = o.dryRun
	sc, err := Build(reg, o.file, errOut)
	if err != nil {
		return err
	}
	var listed []core.Event
	var list func(*core.Event, bool)
	if f.DryRun {
		list = func(ev *core.Event, _ bool) { listed = append(listed, *ev) }
	}
	rep, recorded, err := sc.Replay(ctx, o.sink, f, osUser(), list)
	if errors.Is(err, runtime.ErrNoSink) {
		return invalid(fmt.Errorf("--sink %q: %w", o.sink, err))
	}
	if f.DryRun {
		if err != nil {
			return err
		}
		if err := printTable(out, listed); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s would be delivered to sink %q (%d matched, %d from the audit log, %d left out by the sink's events or when, %d would be dead-lettered)\n",
			countEvents(rep.Count), o.sink, rep.Matched, rep.FromArchive, rep.Skipped, rep.DeadLettered)
		return nil
	}
	fmt.Fprintf(out, "replayed %s to sink %q (%d matched, %d from the audit log, %d left out by the sink's events or when, %d dead-lettered)\n",
		countEvents(rep.Count), o.sink, rep.Matched, rep.FromArchive, rep.Skipped, rep.DeadLettered)
	switch {
	case len(recorded) > 0:
		fmt.Fprintf(out, "recorded in the audit log of sink %q\n", recorded[0])
	case err == nil:
		fmt.Fprintf(errOut, "the replay is not recorded: %s has no audit sink\n", sc.Config.File)
	}
	return err
}

// replayFilter reads the filters of a replay: times as the flags (or the
// admin API's body) give them, an RFC 3339 time or a duration back from
// now.
func replayFilter(since, until string, types []string, subject string, now time.Time) (runtime.ReplayFilter, error) {
	f := runtime.ReplayFilter{Types: types, Subject: subject}
	var err error
	if since != "" {
		if f.Since, err = parseInstant("--since", since, now); err != nil {
			return f, err
		}
	}
	if until != "" {
		if f.Until, err = parseInstant("--until", until, now); err != nil {
			return f, err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, fmt.Errorf("--until %s is not after --since %s: no event can match", until, since)
	}
	return f, nil
}

// osUser names the operating system user running the command, for the
// record of a replay.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// Replay delivers again to the named sink the events f chooses (see
// runtime.ReplaySink): in a running sidecar beside the sink's own
// deliveries, otherwise with the stream and the sink opened for it. The
// events the stream no longer holds come from the configuration's audit
// log, when it has an audit sink. A replay that got to deliver (not a dry
// run) is recorded in the log of every enabled audit sink, with who asked
// for it, the filter and how many events were delivered; recorded names
// those sinks. list, when set, receives the events of a dry run.
func (sc *Sidecar) Replay(ctx context.Context, name string, f runtime.ReplayFilter, who string, list func(*core.Event, bool)) (rep runtime.ReplayReport, recorded []string, err error) {
	logs, err := openAuditLogs(ctx, sc.Config)
	if err != nil {
		return rep, nil, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, l := range logs {
			_ = l.sink.Close(cctx)
		}
	}()
	o := runtime.ReplayOptions{List: list}
	if len(logs) > 0 {
		o.Archive = auditArchive{logs[0].sink.DB()}
	}
	rep, err = sc.Runtime.ReplaySink(ctx, name, f, o)
	if f.DryRun || (err != nil && rep.Matched == 0) {
		return rep, nil, err
	}
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := audit.Replay{
		Who:    who,
		Sink:   name,
		Filter: audit.Query{Types: f.Types, Subject: f.Subject, Since: f.Since, Until: f.Until},
		Count:  rep.Count,
	}
	for _, l := range logs {
		if _, rerr := audit.RecordReplay(rctx, l.sink.DB(), r); rerr != nil {
			err = errors.Join(err, fmt.Errorf("sink %q: %w", l.name, rerr))
			continue
		}
		recorded = append(recorded, l.name)
	}
	return rep, recorded, err
}

// auditLog is an audit sink of the configuration, opened for a replay.
type auditLog struct {
	name string
	sink *audit.Sink
}

// openAuditLogs opens the log of every enabled audit sink of cfg (creating
// it when the sink has not run yet). The caller closes them.
func openAuditLogs(ctx context.Context, cfg *config.Config) ([]auditLog, error) {
	var out []auditLog
	fail := func(err error) ([]auditLog, error) {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, l := range out {
			_ = l.sink.Close(cctx)
		}
		return nil, err
	}
	for _, skc := range cfg.Sinks {
		if skc.Type != audit.Type || skc.Disabled {
			continue
		}
		s := audit.New()
		if err := s.Configure(skc.Config); err != nil {
			return fail(fmt.Errorf("sink %q: %w", skc.Name, err))
		}
		env := core.Env{Name: skc.Name, Logger: slog.New(slog.DiscardHandler), StateDir: runtime.SinkStateDir(cfg.StateDir, skc.Name)}
		if err := s.Open(ctx, env); err != nil {
			_ = s.Close(ctx)
			return fail(fmt.Errorf("open the audit log of sink %q: %w", skc.Name, err))
		}
		out = append(out, auditLog{name: skc.Name, sink: s})
	}
	return out, nil
}

// auditArchive gives a replay the events of an audit log, read a page at
// a time.
type auditArchive struct{ db *audit.DB }

// Events calls fn with each event of the log that f's types, subject and
// time range select.
func (a auditArchive) Events(ctx context.Context, f runtime.ReplayFilter, fn func(*core.Event) error) error {
	return audit.Scan(ctx, a.db, audit.Query{Types: f.Types, Subject: f.Subject, Since: f.Since, Until: f.Until}, fn)
}

// Holds reports whether the log holds the event with id.
func (a auditArchive) Holds(ctx context.Context, id string) (bool, error) {
	return audit.Holds(ctx, a.db, id)
}

// replayRequest is the body of POST /v1/sinks/{name}/replay: the filters
// of `events replay`, times as RFC 3339 or durations back from now.
type replayRequest struct {
	Since   string   `json:"since"`
	Until   string   `json:"until"`
	Types   []string `json:"types"`
	Subject string   `json:"subject"`
	DryRun  bool     `json:"dry_run"`
}

// replayHandler serves POST /v1/sinks/{name}/replay from loopback: it
// counts the events the body's filter chooses and answers 202 with the
// count, then replays them in the background (recorded in the audit log
// with the client's address once done); with dry_run it answers 200 with
// the count and the events, and delivers nothing.
func (sc *Sidecar) replayHandler(w http.ResponseWriter, r *http.Request) {
	if !loopbackOnly(w, r, "replay") {
		return
	}
	name := r.PathValue("name")
	var req replayRequest
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "replay body: " + err.Error() + `; send {"since": "2h", "until": "...", "types": [...], "subject": "...", "dry_run": false}`})
			return
		}
	}
	f, err := replayFilter(req.Since, req.Until, req.Types, req.Subject, time.Now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	answer := func(err error) {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, runtime.ErrNoSink):
			code = http.StatusNotFound
		case errors.Is(err, runtime.ErrSinkNotRunning):
			code = http.StatusConflict
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
	}
	for _, skc := range sc.Config.Sinks {
		if skc.Name == name && skc.Disabled {
			writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("sink %q is disabled in the configuration: nothing delivers to it", name)})
			return
		}
	}
	// The count first: what a dry run of the same filter finds.
	dry := f
	dry.DryRun = true
	events := []core.Event{}
	rep, _, err := sc.Replay(r.Context(), name, dry, actor(r), func(ev *core.Event, _ bool) {
		if req.DryRun {
			events = append(events, *ev)
		}
	})
	if err != nil {
		answer(err)
		return
	}
	if !req.DryRun {
		for _, st := range sc.Runtime.Status().Sinks {
			if st.Name == name && st.State != runtime.StateRunning && st.State != runtime.StateCircuitOpen {
				answer(fmt.Errorf("replay to sink %q: the sink is %s, %w; resume it or wait until it runs", name, st.State, runtime.ErrSinkNotRunning))
				return
			}
		}
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, map[string]any{"sink": name, "dry_run": true, "count": rep.Count, "report": rep, "events": events})
		return
	}
	who := actor(r)
	go func() {
		rep, _, err := sc.Replay(context.Background(), name, f, who, nil)
		if err != nil {
			sc.Logger.Error("replay failed", "sink", name, "remote_addr", who, "delivered", rep.Count, "err", err)
			return
		}
		sc.Logger.Info("replay done", "sink", name, "remote_addr", who, "delivered", rep.Count, "matched", rep.Matched)
	}()
	sc.Logger.Info("sink replay requested", "sink", name, "remote_addr", who, "count", rep.Count)
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "replaying", "sink": name, "count": rep.Count, "from_audit_log": rep.FromArchive})
}

// countEvents is "1 event" or "n events".
func countEvents(n int64) string {
	if n == 1 {
		return "1 event"
	}
	return fmt.Sprintf("%d events", n)
}
