// Package plugin registers the "plugin" source connector: a connector that
// runs in its own process, started, supervised and spoken to by the
// sidecar. The process is a Go program built with plugin.Serve (over gRPC
// on a Unix socket, through hashicorp/go-plugin) or a program in any
// language speaking JSON Lines on stdin and stdout (see plugin/PROTOCOL.md).
//
// Each Open starts the executable, negotiates the protocol version, passes
// the connector's config for the plugin to validate, and opens it at the
// last committed position. Changes stream in under credit-based flow
// control; acks stream back. A plugin that exits, reports an error or
// stays silent past its heartbeat timeout makes Read fail, so the runtime
// closes it and starts a new process from the last committed position.
// See README.md.
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
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// Type is the connector type ID.
const Type = "plugin"

func init() {
	core.RegisterSource(Spec())
}

// Spec returns the connector's registration, for registries built by tests.
func Spec() core.SourceSpec {
	return core.SourceSpec{
		Type:    Type,
		Summary: "Runs a connector in its own process (a Go plugin over gRPC, or any language over JSON Lines) and restarts it from the last committed position when it crashes or hangs.",
		Config:  Config{},
		New:     func() core.Source { return New() },
	}
}

// Source is a connector served by a plugin process. Create it with New.
type Source struct {
	cfg  Config
	name string

	mu     sync.Mutex
	sess   *session
	starts int
	pid    int
	met    *metrics

	acked atomic.Pointer[core.Position]
}

// New returns an unconfigured source.
func New() *Source { return &Source{} }

// Configure decodes the sidecar's side of the configuration, with its
// declared defaults, and validates it. It does no I/O: the plugin checks its own config block when Open starts
// it, and `tributary plugin test` checks it offline.
func (s *Source) Configure(c core.Config) error {
	var cfg Config
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.cfg, s.name = cfg, c.Name
	return nil
}

// Open starts the plugin, checks its protocol version, passes it its
// config and opens it after from, all within start_timeout. Problems the
// plugin finds in its config come back as *core.FieldError values below
// "config", wrapped as fatal: restarting cannot fix them.
func (s *Source) Open(ctx context.Context, env core.Env, from core.Position) error {
	if s.cfg.Command == "" {
		return core.Fatal(errors.New("plugin source opened before Configure"))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	s.mu.Lock()
	if s.sess != nil {
		s.mu.Unlock()
		return errors.New("plugin source opened twice without Close")
	}
	s.mu.Unlock()
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := filepath.Base(s.cfg.Command)
	log = log.With("plugin", base)
	proc, err := s.start(log)
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return core.Fatal(&core.FieldError{Path: "command", Err: fmt.Errorf("start plugin %q: %w: check the path and that it is executable", s.cfg.Command, err)})
		}
		if strings.Contains(err.Error(), "Incompatible API version") {
			return core.Fatal(fmt.Errorf("start plugin %q: %w: the plugin was built for another version of the plugin protocol (this sidecar speaks %d over grpc); rebuild it with this version of plugin.Serve", s.cfg.Command, err, plugin.ProtocolVersion))
		}
		return fmt.Errorf("start plugin %q: %w", s.cfg.Command, err)
	}
	sess := newSession(base, proc, log, s.cfg.Credits, s.cfg.HeartbeatTimeout)
	s.mu.Lock()
	s.sess, s.pid = sess, proc.PID()
	s.starts++
	s.started(env, log)
	s.mu.Unlock()
	log.Debug("plugin started", "pid", proc.PID(), "transport", s.cfg.Transport)
	return s.handshake(ctx, sess, env, from)
}

func (s *Source) start(log *slog.Logger) (process, error) {
	stderr := newLogWriter(log)
	if s.cfg.Transport == plugin.TransportJSONL {
		return startJSONL(s.command(), stderr)
	}
	return startGRPC(s.command(), stderr, s.cfg.StartTimeout)
}

// handshake runs hello, configure and open. On error the runtime calls
// Close, which stops the process.
func (s *Source) handshake(ctx context.Context, sess *session, env core.Env, from core.Position) error {
	versions := plugin.Versions(s.cfg.Transport)
	hello, err := sess.request(ctx, &plugin.Message{Type: plugin.TypeHello, Protocols: versions}, plugin.TypeHello)
	if err != nil {
		return fmt.Errorf("plugin %q handshake: %w", s.cfg.Command, err)
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
		// The plugin's settings sit under config: in the connector's
		// own configuration, itself at env.ConfigPath in the file.
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
	if !from.IsZero() {
		open.Position = &from
	}
	opened, err := sess.request(ctx, open, plugin.TypeOpened)
	if err != nil {
		return fmt.Errorf("open plugin %q: %w", s.cfg.Command, err)
	}
	if opened.Error != "" {
		err := fmt.Errorf("plugin %q open from %s: %s", s.cfg.Command, from, opened.Error)
		if opened.Fatal {
			return core.Fatal(err)
		}
		return err
	}
	return nil
}

func (s *Source) current() *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sess
}

// Read returns the next batch the plugin sent and returns its credits. It
// fails when the plugin exited, reported an error, broke flow control or
// stayed silent past heartbeat_timeout; the runtime then closes the source
// and opens it again, which starts a new process.
func (s *Source) Read(ctx context.Context) ([]core.Change, error) {
	sess := s.current()
	if sess == nil {
		return nil, core.Fatal(errors.New("plugin source read before Open"))
	}
	return sess.read(ctx)
}

// Ack passes pos to the plugin. It never waits on the plugin: acks
// coalesce, and only the latest is sent.
func (s *Source) Ack(_ context.Context, pos core.Position) error {
	sess := s.current()
	if sess == nil {
		return errors.New("plugin source acked before Open")
	}
	s.acked.Store(&pos)
	sess.ack(pos)
	return nil
}

// Close asks the plugin to close, then stops its process within ctx. It is
// safe to call twice and after a failed Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	sess := s.sess
	s.sess = nil
	s.mu.Unlock()
	if sess == nil {
		return nil
	}
	return sess.close(ctx)
}

// Produce asks the plugin to make n new changes appear in its system: the
// test hook behind the conformance kit's Produce. It fails when the plugin
// did not announce the produce capability.
func (s *Source) Produce(ctx context.Context, n int) error {
	sess := s.current()
	if sess == nil {
		return errors.New("plugin source: produce before Open")
	}
	if !sess.has(plugin.CapabilityProduce) {
		return fmt.Errorf("plugin %q does not implement the produce test hook", s.cfg.Command)
	}
	r, err := sess.request(ctx, &plugin.Message{Type: plugin.TypeProduce, N: n}, plugin.TypeProduced)
	if err != nil {
		return err
	}
	if r.Error != "" {
		return fmt.Errorf("plugin %q produce: %s", s.cfg.Command, r.Error)
	}
	return nil
}

// CanProduce reports whether the open plugin implements the produce test
// hook.
func (s *Source) CanProduce() bool {
	sess := s.current()
	return sess != nil && sess.has(plugin.CapabilityProduce)
}

// PID returns the process id of the running plugin, or 0.
func (s *Source) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return 0
	}
	return s.pid
}

// Status reports the plugin's process, transport, starts and buffer.
func (s *Source) Status() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := map[string]any{"command": s.cfg.Command, "transport": s.cfg.Transport, "starts": s.starts}
	if s.sess != nil {
		st["pid"] = s.pid
		st["buffered"] = s.sess.buffered.Load()
		st["credits"] = s.cfg.Credits
	}
	if p := s.acked.Load(); p != nil {
		st["acked"] = p.String()
	}
	return st
}

// Health returns nil while the plugin process answers.
func (s *Source) Health(context.Context) error {
	sess := s.current()
	if sess == nil {
		return errors.New("plugin not running")
	}
	select {
	case <-sess.done:
		return sess.err
	default:
		return nil
	}
}

var (
	_ core.Source         = (*Source)(nil)
	_ core.StatusReporter = (*Source)(nil)
	_ core.HealthChecker  = (*Source)(nil)
	_ plugin.Producer     = (*Source)(nil)
)
