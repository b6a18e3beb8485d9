package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

func newRunCmd(reg *core.Registry) *cobra.Command {
	var file, httpAddr, adminAddr string
	// checkAddress reports a flag's listen address that is not host:port
	// with a numeric port, as validation does for the file's addresses.
	checkAddress := func(flag, a string) error {
		_, port, err := net.SplitHostPort(a)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return invalid(fmt.Errorf("--%s %q: not a listen address; write host:port, such as 127.0.0.1:8080 (\":8080\" listens on every interface)", flag, a))
		}
		return nil
	}
	cmd := &cobra.Command{
		Use:   "run -c FILE [--http ADDR] [--admin ADDR]",
		Short: "Run the sidecar: every configured connector, until SIGTERM or SIGINT",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			flags := cmd.Flags()
			if flags.Changed("http") {
				if err := checkAddress("http", httpAddr); err != nil {
					return err
				}
			}
			if flags.Changed("admin") && adminAddr != "" {
				if err := checkAddress("admin", adminAddr); err != nil {
					return err
				}
			}
			runtime.TuneGC()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sc, err := Build(reg, file, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			mem := runtime.LimitMemory(sc.Config.Memory.Limit)
			defer mem.Stop()
			if flags.Changed("http") {
				if sc.Config.HTTP.Address == "" {
					return invalid(fmt.Errorf("--http %q: %s turns the HTTP listener off (http.address is empty), so no connector mounts on it; set http.address in the file instead", httpAddr, file))
				}
				sc.Config.HTTP.Address = httpAddr
			}
			if flags.Changed("admin") {
				if adminAddr != "" && len(sc.Config.Admin.Tokens) == 0 && !loopback(adminAddr) {
					return invalid(fmt.Errorf("--admin %q is not a loopback address, and the admin API acts on the sidecar: set admin.auth.tokens in %s (bearer tokens, such as {name: ops, role: operator, token: ${env:TRIBUTARY_ADMIN_TOKEN}}), or listen on 127.0.0.1", adminAddr, file))
				}
				sc.Config.Admin.Address = adminAddr
			}
			return sc.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "tributary.yaml", "configuration file")
	cmd.Flags().StringVar(&httpAddr, "http", "", "listen address of the HTTP listener webhooks mount on, overriding http.address")
	cmd.Flags().StringVar(&adminAddr, "admin", "", `listen address of the admin API, overriding admin.address ("" turns it off)`)
	return cmd
}

// newLogger builds the sidecar's logger from the log section.
func newLogger(lc config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(lc.Level))
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(lc.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Sidecar is a loaded, wired sidecar, ready to run.
type Sidecar struct {
	// Config is the configuration loaded at start. A reload (Reload)
	// restarts the connectors and sinks it changes but does not replace
	// Config; the sections it does not apply take effect on a restart.
	Config   *config.Config
	Runtime  *runtime.Runtime
	Registry *prometheus.Registry
	Router   *runtime.Router
	// AdminRouter carries connectors' operator endpoints on the admin
	// listener.
	AdminRouter *runtime.Router
	Logger      *slog.Logger
	// Lifecycle is the lifecycle tracker, nil when no entity is declared.
	Lifecycle *lifecycle.Tracker
	// Stream is the runtime's stream: its checkpoints and dead letters are
	// valid while the runtime runs it.
	Stream core.Stream

	reload  reloadState
	tracing *tracing
}

// Build loads the configuration at file and wires the stream, connectors,
// rules and sinks into a runtime. It does no I/O beyond reading the
// configuration.
func Build(reg *core.Registry, file string, logOut io.Writer) (*Sidecar, error) {
	cfg, err := config.Load(file, reg)
	if err != nil {
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return nil, invalid(err)
		}
		return nil, err
	}
	log := newLogger(cfg.Log, logOut)
	for _, w := range cfg.Warnings {
		log.Warn(w.Message, "at", w.String())
	}
	stream, err := cfg.Stream.NewStream(reg)
	if err != nil {
		return nil, invalid(err)
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	router := runtime.NewRouter()
	adminRouter := runtime.NewRouter()
	var conns []runtime.Connector
	for i := range cfg.Connectors {
		c, err := buildConnector(cfg, i, reg, router)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	sinks, err := buildSinks(cfg, reg)
	if err != nil {
		return nil, err
	}
	topics := runtime.Topics{Mode: cfg.Stream.Topics.Mode, Prefix: cfg.Stream.Topics.Prefix, Name: cfg.Stream.Topics.Name}
	tracker, trackerSink, err := buildTracker(cfg, stream, topics, promReg, log)
	if err != nil {
		return nil, err
	}
	if trackerSink != nil {
		sinks = append(sinks, *trackerSink)
	}
	var httpRouter core.Router
	if cfg.HTTP.Address != "" {
		httpRouter = router
	}
	tr, err := newTracing(cfg.Tracing)
	if err != nil {
		return nil, invalid(err)
	}
	rt, err := runtime.New(runtime.Options{
		Stream:          stream,
		Topics:          runtime.Topics{Mode: cfg.Stream.Topics.Mode, Prefix: cfg.Stream.Topics.Prefix, Name: cfg.Stream.Topics.Name},
		DeadLetterTopic: cfg.Stream.DeadLetterTopic,
		Connectors:      conns,
		Sinks:           sinks,
		EventTypes:      knownTypes(cfg),
		StateDir:        cfg.StateDir,
		HTTP:            httpRouter,
		Admin:           adminRouter,
		Registerer:      promReg,
		Logger:          log,
		ShutdownTimeout: cfg.Shutdown.Timeout,
		TracerProvider:  tr.tracerProvider(),
	})
	if err != nil {
		return nil, err
	}
	sc := &Sidecar{Config: cfg, Runtime: rt, Registry: promReg, Router: router, AdminRouter: adminRouter, Logger: log, Lifecycle: tracker, Stream: stream}
	sc.reload.reg, sc.reload.cfg = reg, cfg
	sc.tracing = tr
	return sc, nil
}

// buildConnector builds connector i of cfg: its source (its type's New
// and Configure) and its compiled rules. The HTTP routes of a connector
// that takes deliveries are reserved on router (those already there are
// left as they are: a reloaded connector takes over its own).
func buildConnector(cfg *config.Config, i int, reg *core.Registry, router *runtime.Router) (runtime.Connector, error) {
	cc := cfg.Connectors[i]
	src, err := cc.NewSource(reg)
	if err != nil {
		return runtime.Connector{}, invalid(err)
	}
	if in, ok := src.(core.Ingress); ok && cfg.HTTP.Address != "" && !cc.Disabled {
		// Senders are told to retry, not 404, until the connector
		// mounts its routes.
		for _, route := range in.Routes() {
			if router.Has(route) {
				continue
			}
			if err := router.Reserve(route); err != nil {
				return runtime.Connector{}, fmt.Errorf("connector %q: %w", cc.Name, err)
			}
		}
	}
	set := cfg.Compiled.Rules[cc.Name]
	if set == nil {
		return runtime.Connector{}, fmt.Errorf("connector %q: rules were not compiled", cc.Name)
	}
	return runtime.Connector{
		Name:           cc.Name,
		Type:           cc.Type,
		Source:         src,
		Mapper:         runtime.Rules(set),
		Retry:          runtime.Backoff{Initial: cc.Retry.Initial, Max: cc.Retry.Max},
		MaxInFlight:    cc.MaxInFlight,
		OnPublishError: cc.OnPublishError,
		ConfigPath:     fmt.Sprintf("connectors[%d].config", i),
		Disabled:       cc.Disabled,
	}, nil
}

// buildSinks builds each configured sink (its type's New and Configure)
// with the filter and mapping its compiled when and map make.
func buildSinks(cfg *config.Config, reg *core.Registry) ([]runtime.Sink, error) {
	var out []runtime.Sink
	for i := range cfg.Sinks {
		s, err := buildSink(cfg, i, reg)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// buildSink builds sink i of cfg.
func buildSink(cfg *config.Config, i int, reg *core.Registry) (runtime.Sink, error) {
	sc := cfg.Sinks[i]
	if sc.Disabled {
		if _, ok := reg.Sink(sc.Type); !ok {
			// A slim build may keep a disabled sink of a type it lacks
			// in the file (Load warned); it is listed, never run.
			return runtime.Sink{Name: sc.Name, Type: sc.Type, Sink: core.SinkFunc(nil), Disabled: true}, nil
		}
	}
	sk, err := sc.NewSink(reg)
	if err != nil {
		return runtime.Sink{}, invalid(err)
	}
	progs, ok := cfg.Compiled.Sinks[sc.Name]
	if !ok {
		return runtime.Sink{}, fmt.Errorf("sink %q: its expressions were not compiled", sc.Name)
	}
	from := core.FromBeginning
	if sc.Start == config.SinkStartEnd {
		from = core.FromEnd
	}
	// The filter and the map share one decoding of each event.
	filter, mapper := rules.SinkFuncs(sc.Name, progs.When, progs.Map)
	filter = subjectFilter(sc.Subjects, filter)
	return runtime.Sink{
		Name:        sc.Name,
		Type:        sc.Type,
		Sink:        sk,
		Types:       sc.Events,
		Filter:      filter,
		Map:         mapper,
		Retry:       sc.Retry,
		Concurrency: sc.Concurrency,
		MaxBatch:    sc.MaxBatch,
		From:        from,
		Disabled:    sc.Disabled,
	}, nil
}

// subjectFilter returns filter behind a check that an event's subject
// matches one of globs; with no globs, filter as it is.
func subjectFilter(globs []string, filter func(*core.Event) (bool, error)) func(*core.Event) (bool, error) {
	if len(globs) == 0 {
		return filter
	}
	return func(ev *core.Event) (bool, error) {
		for _, g := range globs {
			if ok, _ := path.Match(g, ev.Subject); ok {
				if filter == nil {
					return true, nil
				}
				return filter(ev)
			}
		}
		return false, nil
	}
}

// releaseStartupCode drops the binary's start-up code pages from the
// resident memory (runtime.ReleaseStartupCode) once the runtime is ready,
// so that the connectors' own start-up has run, or after
// releaseStartupWait when it is not ready by then.
func (sc *Sidecar) releaseStartupCode(ctx context.Context) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(releaseStartupWait)
wait:
	for !sc.Runtime.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			break wait
		case <-tick.C:
		}
	}
	n, err := runtime.ReleaseStartupCode()
	if err != nil {
		sc.Logger.Warn("start-up code pages kept", "err", err)
		return
	}
	sc.Logger.Debug("start-up code pages released", "bytes", n)
}

// releaseStartupWait bounds how long releaseStartupCode waits for the
// runtime to be ready.
const releaseStartupWait = 10 * time.Second

// Run serves the admin and webhook listeners and runs the runtime until ctx
// is cancelled, then shuts everything down within the configured timeout.
// A SIGHUP meanwhile reloads the configuration (Reload).
func (sc *Sidecar) Run(ctx context.Context) error {
	cfg, log := sc.Config, sc.Logger
	var servers []*http.Server
	serve := func(name, addr string, h http.Handler, tlsCfg config.TLSConfig, readTimeout time.Duration) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener on %s: %w (is another process using the port? change %s.address)", name, addr, err, name)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: readTimeout}
		servers = append(servers, srv)
		go func() {
			var err error
			if tlsCfg.Enabled() {
				err = srv.ServeTLS(ln, tlsCfg.CertFile, tlsCfg.KeyFile)
			} else {
				err = srv.Serve(ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("listener stopped", "listener", name, "err", err)
			}
		}()
		log.Info("listening", "listener", name, "address", ln.Addr().String(), "tls", tlsCfg.Enabled())
		return nil
	}
	shutdownServers := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
	}
	if cfg.Admin.Address != "" {
		if err := serve("admin", cfg.Admin.Address, sc.AdminServer(), config.TLSConfig{}, 30*time.Second); err != nil {
			return err
		}
	}
	if cfg.HTTP.Address != "" {
		if err := serve("http", cfg.HTTP.Address, sc.tracing.handler(sc.Router), cfg.HTTP.TLS, cfg.HTTP.ReadTimeout); err != nil {
			shutdownServers()
			return err
		}
	}
	log.Info("tributary starting", "version", Version, "config", cfg.File, "stream", cfg.Stream.Type, "connectors", len(cfg.Connectors))
	stopReload := sc.reloadOnSIGHUP(ctx)
	if cfg.Memory.ReleaseStartupCode {
		go sc.releaseStartupCode(ctx)
	}
	err := sc.Runtime.Run(ctx)
	stopReload()
	shutdownServers()
	tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if terr := sc.tracing.shutdown(tctx); terr != nil {
		log.Warn("traces not flushed", "err", terr)
	}
	cancel()
	if err != nil {
		return err
	}
	log.Info("tributary stopped")
	return nil
}
