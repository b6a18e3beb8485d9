package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// DefaultHeartbeat is the heartbeat interval when the sidecar names none.
const DefaultHeartbeat = time.Second

// closeTimeout bounds the source's Close when the sidecar asks to close.
const closeTimeout = 30 * time.Second

// Serve runs src as a plugin and exits the process when the sidecar ends
// the session: it is the whole main function of a Go connector plugin. It
// speaks the transport the sidecar asks for in the TRIBUTARY_PLUGIN_TRANSPORT
// environment variable, gRPC by default. The source logs through
// Env.Logger, which writes JSON to stderr; the sidecar forwards each line to
// its own log under the connector's name.
func Serve(src core.Source) {
	serveProcess("connector plugin", "a connector of type plugin",
		func(conn Conn, log *slog.Logger) error { return ServeConn(context.Background(), src, conn, log) },
		func(log *slog.Logger) *GRPCPlugin { return &GRPCPlugin{Source: src, Logger: log} })
}

// serveProcess is the main function of a plugin process (what names it,
// config how a sidecar configuration names it): it checks that a sidecar
// started it, serves one session over the transport the sidecar asks for
// (jsonl serves one over a connection; grpc makes the go-plugin server's
// plugin), and exits.
func serveProcess(what, config string, jsonl func(Conn, *slog.Logger) error, grpc func(*slog.Logger) *GRPCPlugin) {
	if os.Getenv(EnvCookie) != CookieValue {
		fmt.Fprintf(os.Stderr, "This program is a Tributary %s. Name it in a sidecar configuration\n(%s with command: %s) instead of running it directly.\n", what, config, os.Args[0])
		os.Exit(1)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	switch t := os.Getenv(EnvTransport); t {
	case TransportJSONL:
		// The sidecar ends the session by closing stdin; an interrupt
		// meant for it must not kill the plugin first.
		signal.Ignore(os.Interrupt)
		out := os.Stdout
		// Stray prints would corrupt the protocol; send them to the log.
		os.Stdout = os.Stderr
		err = jsonl(NewJSONConn(os.Stdin, out), logger)
	case TransportGRPC, "":
		serveGRPC(grpc(logger))
	default:
		err = fmt.Errorf("unknown transport %q in %s: this plugin speaks %s and %s", t, EnvTransport, TransportGRPC, TransportJSONL)
	}
	if err != nil {
		logger.Error("plugin stopped", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// ServeConn serves src over conn: the plugin end of one session, from the
// hello exchange to close. It returns nil when the sidecar closed the
// session or went away, and an error when the protocol failed. src is
// closed before ServeConn returns.
func ServeConn(ctx context.Context, src core.Source, conn Conn, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{src: src, conn: conn, log: logger}
	s.cond = sync.NewCond(&s.mu)
	return s.serve(ctx)
}

type server struct {
	src      core.Source
	conn     Conn
	log      *slog.Logger
	opened   bool
	sendMu   sync.Mutex
	lastSend atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	cond    *sync.Cond
	credits int
	done    bool
}

func (s *server) send(m *Message) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.lastSend.Store(time.Now().UnixNano())
	if err := s.conn.Send(m); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

func (s *server) serve(ctx context.Context) error {
	m, err := s.conn.Recv()
	if err != nil {
		return fmt.Errorf("receive hello: %w", err)
	}
	if m.Type != TypeHello {
		return fmt.Errorf("first message is %q, want hello", m.Type)
	}
	// Over gRPC, go-plugin's handshake has already settled the version.
	version := 0
	for _, v := range Versions(TransportJSONL) {
		if slices.Contains(m.Protocols, v) {
			version = v
			break
		}
	}
	if version == 0 {
		err := fmt.Errorf("sidecar speaks plugin protocols %v, this plugin speaks %v: upgrade the older of the two", m.Protocols, Versions(TransportJSONL))
		_ = s.send(&Message{Type: TypeError, Error: err.Error(), Fatal: true})
		return err
	}
	hello := &Message{Type: TypeHello, Protocol: version}
	if _, ok := s.src.(Producer); ok {
		hello.Capabilities = append(hello.Capabilities, CapabilityProduce)
	}
	if err := s.send(hello); err != nil {
		return err
	}
	for {
		m, err := s.conn.Recv()
		if err != nil {
			s.closeSource()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m.Type {
		case TypeConfigure:
			vals, err := ConfigValues(m)
			if err == nil {
				err = s.src.Configure(core.NewConfig(m.Name, vals))
			}
			if err := s.send(&Message{Type: TypeConfigured, Problems: Problems(err)}); err != nil {
				return err
			}
		case TypeOpen:
			var from core.Position
			if m.Position != nil {
				from = *m.Position
			}
			env := core.Env{Name: m.Name, Logger: s.log, StateDir: m.StateDir}
			if err := s.src.Open(ctx, env, from); err != nil {
				// The sidecar closes the session next.
				if err := s.send(&Message{Type: TypeOpened, Error: err.Error(), Fatal: errors.Is(err, core.ErrFatal)}); err != nil {
					return err
				}
				s.opened = true
				continue
			}
			s.opened = true
			if err := s.send(&Message{Type: TypeOpened}); err != nil {
				s.closeSource()
				return err
			}
			return s.run(ctx, m)
		case TypeClose:
			return s.finish()
		case TypeProduce:
			if err := s.send(&Message{Type: TypeProduced, Error: "produce before open"}); err != nil {
				return err
			}
		}
	}
}

// run is the streaming phase: changes out as credits allow, credits and
// acks in, until close.
func (s *server) run(ctx context.Context, open *Message) error {
	s.credits = open.Credits
	hb := time.Duration(open.HeartbeatMS) * time.Millisecond
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() {
		cancel()
		s.mu.Lock()
		s.done = true
		s.cond.Broadcast()
		s.mu.Unlock()
		wg.Wait()
	}
	wg.Go(func() { s.pump(rctx) })
	wg.Go(func() { s.heartbeat(rctx, hb) })
	for {
		m, err := s.conn.Recv()
		if err != nil {
			stop()
			s.closeSource()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m.Type {
		case TypeCredit:
			s.mu.Lock()
			s.credits += m.N
			s.cond.Broadcast()
			s.mu.Unlock()
		case TypeAck:
			if m.Position == nil {
				continue
			}
			if err := s.src.Ack(rctx, *m.Position); err != nil {
				s.log.Warn("ack failed; the next ack covers it", "position", m.Position.String(), "err", err)
			}
		case TypeProduce:
			n := m.N
			wg.Go(func() {
				reply := &Message{Type: TypeProduced, N: n}
				p, ok := s.src.(Producer)
				if !ok {
					reply.Error = "this plugin does not implement produce"
				} else if err := p.Produce(rctx, n); err != nil {
					reply.Error = err.Error()
				}
				_ = s.send(reply)
			})
		case TypeClose:
			stop()
			return s.finish()
		}
	}
}

// finish closes the source and answers close.
func (s *server) finish() error {
	err := s.closeSource()
	reply := &Message{Type: TypeClosed}
	if err != nil {
		reply.Error = err.Error()
	}
	return s.send(reply)
}

func (s *server) closeSource() error {
	if !s.opened {
		return nil
	}
	s.opened = false
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return s.src.Close(ctx)
}

// pump reads from the source while credits last and sends what it read,
// splitting a batch larger than the credits left.
func (s *server) pump(ctx context.Context) {
	var pending []core.Change
	// wire is reused from send to send: Send has encoded it when it returns.
	var wire []Change
	for {
		s.mu.Lock()
		for s.credits <= 0 && !s.done {
			s.cond.Wait()
		}
		n, done := s.credits, s.done
		s.mu.Unlock()
		if done {
			return
		}
		if len(pending) == 0 {
			batch, err := s.src.Read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				_ = s.send(&Message{Type: TypeError, Error: err.Error(), Fatal: errors.Is(err, core.ErrFatal)})
				return
			}
			pending = batch
			continue
		}
		k := min(n, len(pending))
		s.mu.Lock()
		s.credits -= k
		s.mu.Unlock()
		wire = wire[:0]
		for i := range pending[:k] {
			wire = append(wire, Change{Change: pending[i], Raw: pending[i].Raw})
		}
		err := s.send(&Message{Type: TypeChanges, Changes: wire})
		clear(wire)
		if err != nil {
			return
		}
		pending = pending[k:]
	}
}

// heartbeat sends a heartbeat whenever nothing was sent for half the
// interval, so that the sidecar can tell a quiet plugin from a hung one.
func (s *server) heartbeat(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if time.Since(time.Unix(0, s.lastSend.Load())) >= every/2 {
				if err := s.send(&Message{Type: TypeHeartbeat}); err != nil {
					return
				}
			}
		}
	}
}
