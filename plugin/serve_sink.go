package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tributary/tributary/core"
)

// ServeSink runs sink as a sink plugin and exits the process when the
// sidecar ends the session: it is the whole main function of a Go sink
// plugin, as Serve is of a source plugin. A sink that implements
// SinkTarget announces the target capability, so that `tributary plugin
// test` can run the sink conformance kit against it.
func ServeSink(sink core.Sink) {
	serveProcess("sink plugin", "a sink of type plugin",
		func(conn Conn, log *slog.Logger) error { return ServeSinkConn(context.Background(), sink, conn, log) },
		func(log *slog.Logger) *GRPCPlugin { return &GRPCPlugin{Sink: sink, Logger: log} })
}

// ServeSinkConn serves sink over conn: the plugin end of one sink
// session, from the hello exchange to close. Each write runs in a
// goroutine of its own, as the sidecar's Writes run concurrently (the
// sidecar bounds them by its credits); a cancel message cancels the
// context of its write. It returns nil when the sidecar closed the
// session or went away, and an error when the protocol failed. sink is
// closed before ServeSinkConn returns.
func ServeSinkConn(ctx context.Context, sink core.Sink, conn Conn, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &sinkServer{sink: sink, log: logger, writes: map[int]context.CancelFunc{}}
	s.conn = conn
	return s.serve(ctx)
}

type sinkServer struct {
	server
	sink   core.Sink
	log    *slog.Logger
	opened bool

	mu     sync.Mutex
	writes map[int]context.CancelFunc
	wg     sync.WaitGroup
}

func (s *sinkServer) serve(ctx context.Context) error {
	m, err := s.conn.Recv()
	if err != nil {
		return fmt.Errorf("receive hello: %w", err)
	}
	if m.Type != TypeHello {
		return fmt.Errorf("first message is %q, want hello", m.Type)
	}
	if m.Role != RoleSink {
		err := fmt.Errorf("the sidecar started this sink plugin as a %s: name it in the sinks section, as a sink of type plugin", roleOf(m.Role))
		_ = s.send(&Message{Type: TypeError, Error: err.Error(), Fatal: true})
		return err
	}
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
	hello := &Message{Type: TypeHello, Protocol: version, Role: RoleSink}
	if _, ok := s.sink.(SinkTarget); ok {
		hello.Capabilities = append(hello.Capabilities, CapabilityTarget)
	}
	if err := s.send(hello); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var hb sync.WaitGroup
	defer hb.Wait()
	defer cancel()
	for {
		m, err := s.conn.Recv()
		if err != nil {
			s.stopWrites()
			s.closeSink()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch m.Type {
		case TypeConfigure:
			vals, err := ConfigValues(m)
			if err == nil {
				err = s.sink.Configure(core.NewConfig(m.Name, vals))
			}
			if err := s.send(&Message{Type: TypeConfigured, Problems: Problems(err)}); err != nil {
				return err
			}
		case TypeOpen:
			env := core.Env{Name: m.Name, Logger: s.log, StateDir: m.StateDir}
			reply := &Message{Type: TypeOpened}
			if err := s.sink.Open(rctx, env); err != nil {
				reply.Error, reply.Fatal = err.Error(), errors.Is(err, core.ErrFatal)
			}
			s.opened = true
			if err := s.send(reply); err != nil {
				s.closeSink()
				return err
			}
			every := time.Duration(m.HeartbeatMS) * time.Millisecond
			if every <= 0 {
				every = DefaultHeartbeat
			}
			hb.Go(func() { s.heartbeat(rctx, every) })
		case TypeWrite:
			s.write(rctx, m)
		case TypeCancel:
			s.mu.Lock()
			if c := s.writes[m.N]; c != nil {
				c()
			}
			s.mu.Unlock()
		case TypeTarget:
			s.wg.Go(func() { _ = s.send(s.target(rctx, m)) })
		case TypeClose:
			s.stopWrites()
			err := s.closeSink()
			reply := &Message{Type: TypeClosed}
			if err != nil {
				reply.Error = err.Error()
			}
			return s.send(reply)
		}
	}
}

func roleOf(r string) string {
	if r == "" {
		return RoleSource
	}
	return r
}

// write runs the write m in a goroutine and sends its results.
func (s *sinkServer) write(ctx context.Context, m *Message) {
	id := m.N
	wctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.writes[id] = cancel
	s.mu.Unlock()
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			delete(s.writes, id)
			s.mu.Unlock()
			cancel()
		}()
		ds, err := FromWireDeliveries(m.Deliveries)
		var rs []core.Result
		if err != nil {
			rs = make([]core.Result, len(m.Deliveries))
			for i := range rs {
				rs[i] = core.Result{Status: core.StatusFailed, Err: err}
			}
		} else {
			rs = s.sink.Write(wctx, ds)
		}
		if len(rs) != len(m.Deliveries) {
			err := fmt.Errorf("the sink returned %d results for %d deliveries", len(rs), len(m.Deliveries))
			_ = s.send(&Message{Type: TypeError, Error: err.Error(), Fatal: true})
			return
		}
		_ = s.send(&Message{Type: TypeResults, N: id, Results: ToWireResults(rs)})
	})
}

// target answers a target message with the sink's SinkTarget.
func (s *sinkServer) target(ctx context.Context, m *Message) *Message {
	reply := &Message{Type: TypeTarget, Mode: m.Mode}
	t, ok := s.sink.(SinkTarget)
	if !ok {
		reply.Error = "this plugin does not implement the target test hooks"
		return reply
	}
	var err error
	if m.Mode == TargetReceived {
		reply.IDs, err = t.Received(ctx)
		if reply.IDs == nil {
			reply.IDs = []string{}
		}
	} else {
		err = t.Stage(ctx, m.Mode, m.IDs)
	}
	if err != nil {
		reply.Error = err.Error()
	}
	return reply
}

// stopWrites cancels the writes in flight and waits for them.
func (s *sinkServer) stopWrites() {
	s.mu.Lock()
	for _, c := range s.writes {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *sinkServer) closeSink() error {
	if !s.opened {
		return nil
	}
	s.opened = false
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return s.sink.Close(ctx)
}
