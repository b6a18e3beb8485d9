package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/runtime"
)

// lifecycleDir is where the lifecycle tracker keeps its store, below the
// state directory.
func lifecycleDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "lifecycle") }

// buildTracker returns the lifecycle tracker and the sink that runs it when
// the configuration declares entities, or nil. Its sink is named after the
// store's generation, so that a new store reads the stream from its
// beginning through a new consumer group.
func buildTracker(cfg *config.Config, stream core.Stream, topics runtime.Topics, reg prometheus.Registerer, log *slog.Logger) (*lifecycle.Tracker, *runtime.Sink, error) {
	if len(cfg.Compiled.Lifecycle) == 0 {
		return nil, nil, nil
	}
	dir := lifecycleDir(cfg)
	gen, err := lifecycle.Generation(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("lifecycle tracker: %w", err)
	}
	tr := lifecycle.New(lifecycle.Config{
		Machines:   cfg.Compiled.Lifecycle,
		Dir:        dir,
		Generation: gen,
		Publish:    lifecycle.StreamPublisher(stream.Publisher, topics.For),
		Metrics:    reg,
		Logger:     log.With("sink", lifecycle.SinkName(gen)),
	})
	return tr, &runtime.Sink{
		Name:        lifecycle.SinkName(gen),
		Type:        "lifecycle",
		Sink:        tr,
		Types:       tr.Types(),
		Concurrency: 4,
		MaxBatch:    512,
		From:        core.FromBeginning,
	}, nil
}

// lifecycleEndpoints serves GET /v1/entities/{entity}/{id} (an instance
// and its timeline) and GET /v1/entities/{entity}?state=S&older_than=2h
// (the instances in a state, longest there first).
func (sc *Sidecar) lifecycleEndpoints(mux *http.ServeMux) {
	fail := func(w http.ResponseWriter, err error) {
		code := http.StatusServiceUnavailable
		switch {
		case errors.Is(err, lifecycle.ErrNotFound), errors.Is(err, lifecycle.ErrUnknownEntity):
			code = http.StatusNotFound
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
	}
	mux.HandleFunc("GET /v1/entities/{entity}/{id}", func(w http.ResponseWriter, r *http.Request) {
		if sc.Lifecycle == nil {
			fail(w, fmt.Errorf("%q: %w (the configuration declares no entities)", r.PathValue("entity"), lifecycle.ErrUnknownEntity))
			return
		}
		in, err := sc.Lifecycle.Trace(r.Context(), r.PathValue("entity"), r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, in)
	})
	mux.HandleFunc("GET /v1/entities/{entity}", func(w http.ResponseWriter, r *http.Request) {
		if sc.Lifecycle == nil {
			fail(w, fmt.Errorf("%q: %w (the configuration declares no entities)", r.PathValue("entity"), lifecycle.ErrUnknownEntity))
			return
		}
		q := lifecycle.Query{Entity: r.PathValue("entity"), State: r.URL.Query().Get("state")}
		if s := r.URL.Query().Get("older_than"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("older_than %q is not a duration such as 2h or 30m", s)})
				return
			}
			q.OlderThan = d
		}
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("limit %q is not a positive number", s)})
				return
			}
			q.Limit = n
		}
		if m := sc.Lifecycle.Machine(q.Entity); m != nil && q.State != "" && !slices.Contains(m.Entity.StateNames(), q.State) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("state %q is not a state of %s: use one of %s", q.State, q.Entity, strings.Join(m.Entity.StateNames(), ", "))})
			return
		}
		list, err := sc.Lifecycle.List(r.Context(), q)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"entity": q.Entity, "instances": list})
	})
}

// loadConfigFile loads file, marking a configuration's problems as invalid.
func loadConfigFile(reg *core.Registry, file string) (*config.Config, error) {
	cfg, err := config.Load(file, reg)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return nil, invalid(err)
		}
		return nil, err
	}
	return cfg, nil
}

// declaredEntity returns the machine of name, or an error listing the declared
// entities.
func declaredEntity(cfg *config.Config, name string) (*lifecycle.Machine, error) {
	var names []string
	for _, m := range cfg.Compiled.Lifecycle {
		if m.Name() == name {
			return m, nil
		}
		names = append(names, m.Name())
	}
	if len(names) == 0 {
		return nil, invalid(fmt.Errorf("%s declares no entities: add an entities section (see `tributary schema`)", cfg.File))
	}
	return nil, invalid(fmt.Errorf("entity %q is not declared in %s: use one of %s", name, cfg.File, strings.Join(names, ", ")))
}

// newCatalogCmd is `catalog`, with `catalog graph`.
func newCatalogCmd(reg *core.Registry) *cobra.Command {
	cmd := &cobra.Command{Use: "catalog", Short: "Look at the catalog: the state diagrams of its entities"}
	var file, ent, format string
	graph := &cobra.Command{
		Use:   "graph -c FILE [--entity E] [--format dot|mermaid]",
		Short: "Print the state diagram of each entity (or of --entity) as Graphviz dot or Mermaid",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != lifecycle.FormatDot && format != lifecycle.FormatMermaid {
				return invalid(fmt.Errorf("--format %q: use dot or mermaid", format))
			}
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			ms := cfg.Compiled.Lifecycle
			if ent != "" {
				m, err := declaredEntity(cfg, ent)
				if err != nil {
					return err
				}
				ms = []*lifecycle.Machine{m}
			} else if len(ms) == 0 {
				_, err := declaredEntity(cfg, "")
				return err
			}
			for _, m := range ms {
				if err := lifecycle.WriteGraph(cmd.OutOrStdout(), m.Entity, format); err != nil {
					return err
				}
			}
			return nil
		},
	}
	graph.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	graph.Flags().StringVar(&ent, "entity", "", "only this entity")
	graph.Flags().StringVar(&format, "format", lifecycle.FormatDot, "dot or mermaid")
	cmd.AddCommand(graph)
	return cmd
}

// newLifecyclesCmd is `lifecycles`, with `lifecycles rebuild`.
func newLifecyclesCmd(reg *core.Registry) *cobra.Command {
	cmd := &cobra.Command{Use: "lifecycles", Short: "Manage the lifecycle tracker's store"}
	var file string
	rebuild := &cobra.Command{
		Use:   "rebuild -c FILE",
		Short: "Drop the lifecycle store; the sidecar's next start rebuilds it from the stream's beginning",
		Long: "Drop the lifecycle tracker's store. The next start of the sidecar creates a new one, " +
			"with a new generation and so a new consumer group, which reads every event the stream still " +
			"holds from its beginning. Stop the sidecar first.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfigFile(reg, file)
			if err != nil {
				return err
			}
			if addr := cfg.Admin.Address; addr != "" {
				if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
					c.Close()
					return fmt.Errorf("a sidecar answers on the admin address %s: stop it before rebuilding its lifecycle store", addr)
				}
			}
			return rebuildStore(lifecycleDir(cfg), cmd.OutOrStdout())
		},
	}
	rebuild.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.AddCommand(rebuild)
	return cmd
}

// rebuildStore removes the store in dir: its database, log files and
// snapshot.
func rebuildStore(dir string, out io.Writer) error {
	path := filepath.Join(dir, lifecycle.StoreFile)
	removed, err := lifecycle.RemoveStore(dir)
	if err != nil {
		return err
	}
	if !removed {
		fmt.Fprintf(out, "no lifecycle store at %s; the next start builds one from the stream's beginning\n", path)
		return nil
	}
	fmt.Fprintf(out, "removed %s; the next start rebuilds it from the stream's beginning\n", path)
	return nil
}
