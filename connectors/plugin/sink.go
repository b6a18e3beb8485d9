package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

func init() {
	core.RegisterSink(SinkSpec())
}

// SinkSpec returns the sink's registration, for registries built by
// tests. The sink type is "plugin", like the source type: sources and
// sinks are registered apart.
func SinkSpec() core.SinkSpec {
	return core.SinkSpec{
		Type:    Type,
		Summary: "Delivers events through a sink in its own process (a Go plugin over gRPC, or any language over JSON Lines), restarted when it crashes or hangs.",
		Config:  SinkConfig{},
		New:     func() core.Sink { return NewSink() },
	}
}

// SinkConfig is the `config:` block of a plugin sink. Each key is declared
// once, by the tags of its field.
type SinkConfig struct {
	Command          string            `yaml:"command" required:"true" example:"/opt/tributary/plugins/erp-sink" doc:"Plugin executable: a path, or a name looked up in PATH."`
	Args             []string          `yaml:"args" doc:"Arguments of the plugin executable."`
	Env              map[string]string `yaml:"env" doc:"Variables added to the plugin's environment, which otherwise is the sidecar's."`
	Transport        string            `yaml:"transport" default:"grpc" enum:"grpc,jsonl" doc:"grpc for Go plugins built with plugin.ServeSink; jsonl for any language speaking JSON Lines on stdin and stdout."`
	Config           any               `yaml:"config" doc:"The plugin's own configuration, validated by the plugin when it starts."`
	StartTimeout     time.Duration     `yaml:"start_timeout" default:"30s" doc:"Bound on starting the plugin, its handshake, configuration and Open."`
	Credits          int               `yaml:"credits" default:"1000" doc:"Most deliveries the plugin holds at once, across the sink's concurrent writes; a write larger than that goes in parts."`
	HeartbeatTimeout time.Duration     `yaml:"heartbeat_timeout" default:"10s" doc:"Silence after which the plugin is taken as hung and killed; its deliveries in flight are retried and the next Open starts a new process."`
}

// source returns c as the source's Config, whose checks it shares.
func (c SinkConfig) source() Config {
	return Config{
		Command: c.Command, Args: c.Args, Env: c.Env, Transport: c.Transport, Config: c.Config,
		StartTimeout: c.StartTimeout, Credits: c.Credits, HeartbeatTimeout: c.HeartbeatTimeout,
	}
}

// Validate reports every problem at once. It does no I/O.
func (c SinkConfig) Validate() error { return c.source().Validate() }

// Sink is a sink served by a plugin process. Create it with NewSink.
type Sink struct {
	cfg  Config
	name string

	// restart makes one Write at a time start a new process.
	restart sync.Mutex

	mu     sync.Mutex
	sess   *sinkSession
	env    core.Env
	opened bool
	pid    int
	starts int
}

// NewSink returns an unconfigured plugin sink.
func NewSink() *Sink { return &Sink{} }

// Configure decodes and validates the sidecar's side of the
// configuration. It does no I/O: the plugin checks its own config block
// when Open starts it.
func (s *Sink) Configure(c core.Config) error {
	var cfg SinkConfig
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg, s.name = cfg.source(), c.Name
	return nil
}

// Open starts the plugin, checks its role and protocol version, passes it
// its config and opens it, within start_timeout. Problems the plugin finds
// in its config come back as *core.FieldError values below "config",
// wrapped as fatal. An Open after Close starts a new process; so does a
// Write after the process crashed or hung.
func (s *Sink) Open(ctx context.Context, env core.Env) error {
	if s.cfg.Command == "" {
		return core.Fatal(errors.New("plugin sink opened before Configure"))
	}
	if err := s.Close(ctx); err != nil {
		return err
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	sess, err := s.spawn(ctx, env)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.sess, s.env, s.opened = sess, env, true
	s.mu.Unlock()
	return nil
}

// spawn starts a process and runs its handshake; on failure the process
// is stopped.
func (s *Sink) spawn(ctx context.Context, env core.Env) (*sinkSession, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	base := filepath.Base(s.cfg.Command)
	log := env.Logger.With("plugin", base)
	proc, err := s.start(log)
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, core.Fatal(&core.FieldError{Path: "command", Err: fmt.Errorf("start plugin %q: %w: check the path and that it is executable", s.cfg.Command, err)})
		}
		if strings.Contains(err.Error(), "Incompatible API version") {
			return nil, core.Fatal(fmt.Errorf("start plugin %q: %w: the plugin was built for another version of the plugin protocol (this sidecar speaks %d over grpc); rebuild it with this version of plugin.ServeSink", s.cfg.Command, err, plugin.ProtocolVersion))
		}
		return nil, fmt.Errorf("start plugin %q: %w", s.cfg.Command, err)
	}
	sess := newSinkSession(base, proc, log, s.cfg.Credits, s.cfg.HeartbeatTimeout)
	s.mu.Lock()
	s.pid = proc.PID()
	s.starts++
	s.mu.Unlock()
	log.Debug("sink plugin started", "pid", proc.PID(), "transport", s.cfg.Transport)
	if err := s.handshake(ctx, sess, env); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
		defer cancel()
		_ = sess.close(cctx)
		return nil, err
	}
	return sess, nil
}

// live returns the session to write to, starting a new process when the
// last one crashed, hung or failed.
func (s *Sink) live(ctx context.Context) (*sinkSession, error) {
	s.mu.Lock()
	sess, opened, env := s.sess, s.opened, s.env
	s.mu.Unlock()
	if !opened {
		return nil, fmt.Errorf("plugin sink %q is not open", s.name)
	}
	if sess != nil {
		select {
		case <-sess.done:
		default:
			return sess, nil
		}
	}
	s.restart.Lock()
	defer s.restart.Unlock()
	s.mu.Lock()
	cur := s.sess
	s.mu.Unlock()
	if cur != sess && cur != nil {
		return cur, nil // another Write restarted it
	}
	if sess != nil {
		env.Logger.Warn("sink plugin stopped; starting it again", "err", sess.err)
		_ = sess.close(ctx)
	}
	next, err := s.spawn(ctx, env)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		if next != nil {
			go next.close(context.Background())
		}
		return nil, fmt.Errorf("plugin sink %q is not open", s.name)
	}
	s.sess = next
	if err != nil {
		return nil, err
	}
	return next, nil
}

func (s *Sink) start(log *slog.Logger) (process, error) {
	stderr := newLogWriter(log)
	if s.cfg.Transport == plugin.TransportJSONL {
		return startJSONL(command(s.cfg, plugin.RoleSink), stderr)
	}
	return startGRPC(command(s.cfg, plugin.RoleSink), stderr, s.cfg.StartTimeout)
}

// handshake runs hello, configure and open.
func (s *Sink) handshake(ctx context.Context, sess *sinkSession, env core.Env) error {
	versions := plugin.Versions(s.cfg.Transport)
	hello, err := sess.request(ctx, &plugin.Message{Type: plugin.TypeHello, Protocols: versions, Role: plugin.RoleSink}, plugin.TypeHello)
	if err != nil {
		return fmt.Errorf("plugin %q handshake: %w", s.cfg.Command, err)
	}
	if hello.Role != plugin.RoleSink {
		return core.Fatal(fmt.Errorf("plugin %q is a %s plugin, not a sink: name it under connectors, or build it with plugin.ServeSink", s.cfg.Command, roleName(hello.Role)))
	}
	if !slices.Contains(versions, hello.Protocol) {
		return core.Fatal(fmt.Errorf("plugin %q speaks protocol %d, this sidecar speaks %v over %s: rebuild or upgrade the plugin", s.cfg.Command, hello.Protocol, versions, s.cfg.Transport))
	}
	sess.caps = hello.Capabilities
	conf, err := sess.request(ctx, &plugin.Message{Type: plugin.TypeConfigure, Name: s.name, Config: s.cfg.Config}, plugin.TypeConfigured)
	if err != nil {
		return fmt.Errorf("configure plugin %q: %w", s.cfg.Command, err)
	}
	if len(conf.Problems) > 0 {
		prefix := "config"
		if env.ConfigPath != "" {
			prefix = env.ConfigPath + ".config"
		}
		return core.Fatal(fmt.Errorf("plugin %q refused its configuration: %w", s.cfg.Command, core.PrefixFieldErrors(prefix, plugin.FieldErrors(conf.Problems))))
	}
	open := &plugin.Message{
		Type: plugin.TypeOpen, Name: s.name, StateDir: env.StateDir,
		Credits: s.cfg.Credits, HeartbeatMS: int(s.cfg.heartbeat() / time.Millisecond),
	}
	opened, err := sess.request(ctx, open, plugin.TypeOpened)
	if err != nil {
		return fmt.Errorf("open plugin %q: %w", s.cfg.Command, err)
	}
	if opened.Error != "" {
		err := fmt.Errorf("plugin %q open: %s", s.cfg.Command, opened.Error)
		if opened.Fatal {
			return core.Fatal(err)
		}
		return err
	}
	return nil
}

func roleName(r string) string {
	if r == "" {
		return plugin.RoleSource
	}
	return r
}

func (s *Sink) current() *sinkSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess
}

// Write sends ds to the plugin in write messages of at most credits
// deliveries and returns the results it answers. Once a delivery of a key
// is not delivered, the later ones of that key in later parts are not
// sent (StatusRetry, no error). When ctx is done, Write tells the plugin
// to cancel and returns at once, with StatusRetry for what it has no
// result of; when the plugin fails, everything not answered is retried.
// Write is safe for concurrent use.
func (s *Sink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	out := make([]core.Result, len(ds))
	sess, err := s.live(ctx)
	if err != nil {
		retryAll(ds, out, nil, err)
		return out
	}
	held := map[string]bool{}
	for start := 0; start < len(ds); start += s.cfg.Credits {
		end := min(start+s.cfg.Credits, len(ds))
		var part []core.Delivery
		var idx []int
		for i := start; i < end; i++ {
			if held[ds[i].Event.PartitionKey] {
				out[i] = core.Result{Status: core.StatusRetry}
				continue
			}
			part = append(part, ds[i])
			idx = append(idx, i)
		}
		if len(part) == 0 {
			continue
		}
		rs, err := sess.write(ctx, part)
		if err != nil {
			partOut := make([]core.Result, len(part))
			retryAll(part, partOut, held, err)
			for j, i := range idx {
				out[i] = partOut[j]
			}
			for i := end; i < len(ds); i++ {
				out[i] = core.Result{Status: core.StatusRetry}
			}
			return out
		}
		for j, i := range idx {
			out[i] = rs[j]
			if rs[j].Status != core.StatusDelivered {
				held[ds[i].Event.PartitionKey] = true
			}
		}
	}
	return out
}

// retryAll makes every result a retry, with err on the first of each key
// not held.
func retryAll(ds []core.Delivery, out []core.Result, held map[string]bool, err error) {
	seen := map[string]bool{}
	for i, d := range ds {
		k := d.Event.PartitionKey
		out[i] = core.Result{Status: core.StatusRetry}
		if !seen[k] && !held[k] {
			out[i].Err = err
		}
		seen[k] = true
	}
}

// Close asks the plugin to close, then stops its process within ctx; the
// writes in flight are retried. It is safe to call twice and after a
// failed Open.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	sess := s.sess
	s.sess, s.opened = nil, false
	s.mu.Unlock()
	if sess == nil {
		return nil
	}
	return sess.close(ctx)
}

// Starts returns how many processes the sink started since it was made.
func (s *Sink) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Received asks the plugin's target for the ids of the events it took:
// the test hook behind `tributary plugin test`'s sink checks.
func (s *Sink) Received(ctx context.Context) ([]string, error) {
	r, err := s.target(ctx, &plugin.Message{Type: plugin.TypeTarget, Mode: plugin.TargetReceived})
	if err != nil {
		return nil, err
	}
	return r.IDs, nil
}

// Stage asks the plugin's target to fail or refuse the events with ids,
// or to recover (plugin.TargetFail, TargetRefuse, TargetRecover).
func (s *Sink) Stage(ctx context.Context, mode string, ids []string) error {
	_, err := s.target(ctx, &plugin.Message{Type: plugin.TypeTarget, Mode: mode, IDs: ids})
	return err
}

// CanTarget reports whether the open plugin implements the target test
// hooks.
func (s *Sink) CanTarget() bool {
	sess := s.current()
	return sess != nil && slices.Contains(sess.caps, plugin.CapabilityTarget)
}

func (s *Sink) target(ctx context.Context, m *plugin.Message) (*plugin.Message, error) {
	sess := s.current()
	if sess == nil {
		return nil, fmt.Errorf("plugin sink %q: %s before Open", s.name, m.Mode)
	}
	if !slices.Contains(sess.caps, plugin.CapabilityTarget) {
		return nil, fmt.Errorf("plugin %q does not implement the target test hooks (capability %q)", s.cfg.Command, plugin.CapabilityTarget)
	}
	r, err := sess.request(ctx, m, plugin.TypeTarget)
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, fmt.Errorf("plugin %q target %s: %s", s.cfg.Command, m.Mode, r.Error)
	}
	return r, nil
}

// PID returns the process id of the running plugin, or 0.
func (s *Sink) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return 0
	}
	return s.pid
}

var (
	_ core.Sink         = (*Sink)(nil)
	_ plugin.SinkTarget = (*Sink)(nil)
)
