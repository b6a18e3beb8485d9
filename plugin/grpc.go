package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin/pluginpb"
)

// PluginName is the name the source is dispensed under in go-plugin.
const PluginName = "source"

// Handshake returns the go-plugin handshake of the gRPC transport. Its
// ProtocolVersion is ProtocolVersion.
func Handshake() goplugin.HandshakeConfig {
	return goplugin.HandshakeConfig{ProtocolVersion: ProtocolVersion, MagicCookieKey: EnvCookie, MagicCookieValue: CookieValue}
}

// GRPCPlugin is the go-plugin binding of the gRPC transport. The plugin
// end sets Source; the sidecar end dispenses a pluginpb.SourceClient.
type GRPCPlugin struct {
	// go-plugin requires its net/rpc methods; this plugin is gRPC only.
	goplugin.NetRPCUnsupportedPlugin
	// Source is the served source (plugin end only).
	Source core.Source
	// Sink is the served sink, instead of Source (plugin end only).
	Sink core.Sink
	// Logger is the source's Env.Logger (plugin end only).
	Logger *slog.Logger
	served atomic.Bool
}

// GRPCServer registers the Source service.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginpb.RegisterSourceServer(s, &grpcServer{p: p})
	return nil
}

// GRPCClient returns a pluginpb.SourceClient.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pluginpb.NewSourceClient(cc), nil
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

type grpcServer struct {
	pluginpb.UnimplementedSourceServer
	p *GRPCPlugin
}

func (g *grpcServer) Session(stream grpc.BidiStreamingServer[pluginpb.Message, pluginpb.Message]) error {
	if !g.p.served.CompareAndSwap(false, true) {
		return errors.New("a plugin process serves one session; the sidecar starts a new process for the next")
	}
	if g.p.Sink != nil {
		return ServeSinkConn(stream.Context(), g.p.Sink, NewGRPCConn(stream), g.p.Logger)
	}
	return ServeConn(stream.Context(), g.p.Source, NewGRPCConn(stream), g.p.Logger)
}

func serveGRPC(p *GRPCPlugin) {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake(),
		VersionedPlugins: map[int]goplugin.PluginSet{
			ProtocolVersion: {PluginName: p},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true,
		}),
	})
}

// PBStream is either end of the Session stream.
type PBStream interface {
	Send(*pluginpb.Message) error
	Recv() (*pluginpb.Message, error)
}

// NewGRPCConn returns a Conn over either end of the Session stream.
func NewGRPCConn(s PBStream) Conn { return &grpcConn{s: s} }

type grpcConn struct {
	s   PBStream
	dec decoder // Recv's
	// last is the size of the last batch sent, to size the next.
	last int
}

func (c *grpcConn) Send(m *Message) error {
	pm, err := c.toPB(m)
	if err != nil {
		return err
	}
	return c.s.Send(pm)
}

func (c *grpcConn) Recv() (*Message, error) {
	pm, err := c.s.Recv()
	if err != nil {
		return nil, err
	}
	return c.fromPB(pm)
}

func (c *grpcConn) toPB(m *Message) (*pluginpb.Message, error) {
	pm := &pluginpb.Message{
		Type: m.Type, Protocol: int32(m.Protocol), Capabilities: m.Capabilities, Name: m.Name,
		StateDir: m.StateDir, Credits: int64(m.Credits), HeartbeatMs: int64(m.HeartbeatMS),
		N: int64(m.N), Error: m.Error, Fatal: m.Fatal,
	}
	for _, p := range m.Protocols {
		pm.Protocols = append(pm.Protocols, int32(p))
	}
	if m.Config != nil {
		b, err := json.Marshal(m.Config)
		if err != nil {
			return nil, fmt.Errorf("encode config: %w", err)
		}
		pm.Config = b
	}
	for _, p := range m.Problems {
		pm.Problems = append(pm.Problems, &pluginpb.Problem{Path: p.Path, Message: p.Message})
	}
	if m.Position != nil {
		pm.Position = &pluginpb.Position{Version: m.Position.Version, Data: m.Position.Data}
	}
	if sf := sinkFieldsOf(m); sf != nil {
		b, err := json.Marshal(sf)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", m.Type, err)
		}
		pm.Batch = b
	}
	if len(m.Changes) > 0 {
		b, err := appendBatch(make([]byte, 0, c.last+c.last/8), m.Changes)
		if err != nil {
			return nil, err
		}
		c.last = len(b)
		pm.Batch = b
	}
	return pm, nil
}

func (c *grpcConn) fromPB(pm *pluginpb.Message) (*Message, error) {
	m := &Message{
		Type: pm.Type, Protocol: int(pm.Protocol), Capabilities: pm.Capabilities, Name: pm.Name,
		StateDir: pm.StateDir, Credits: int(pm.Credits), HeartbeatMS: int(pm.HeartbeatMs),
		N: int(pm.N), Error: pm.Error, Fatal: pm.Fatal,
	}
	for _, p := range pm.Protocols {
		m.Protocols = append(m.Protocols, int(p))
	}
	if len(pm.Config) > 0 {
		if err := unmarshalJSON(pm.Config, &m.Config); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	for _, p := range pm.Problems {
		m.Problems = append(m.Problems, Problem{Path: p.Path, Message: p.Message})
	}
	if pm.Position != nil {
		m.Position = &core.Position{Version: pm.Position.Version, Data: pm.Position.Data}
	}
	if len(pm.Batch) > 0 && pm.Type != TypeChanges {
		var sf sinkFields
		if err := unmarshalJSON(pm.Batch, &sf); err != nil {
			return nil, fmt.Errorf("decode %s: %w", pm.Type, err)
		}
		m.Role, m.Deliveries, m.Results, m.Mode, m.IDs = sf.Role, sf.Deliveries, sf.Results, sf.Mode, sf.IDs
		return m, nil
	}
	if len(pm.Batch) > 0 {
		chs, err := c.dec.decodeBatch(pm.Batch)
		if err != nil {
			return nil, err
		}
		m.Changes = chs
	}
	return m, nil
}

// sinkFields are the fields of the sink role that pluginpb.Message has
// no field for: over gRPC they travel as one JSON object in
// Message.batch, in every message but changes.
type sinkFields struct {
	Role       string     `json:"role,omitempty"`
	Deliveries []Delivery `json:"deliveries,omitempty"`
	Results    []Result   `json:"results,omitempty"`
	Mode       string     `json:"mode,omitempty"`
	IDs        []string   `json:"ids,omitempty"`
}

// sinkFieldsOf returns m's sink-role fields, or nil when it has none.
func sinkFieldsOf(m *Message) *sinkFields {
	if m.Role == "" && m.Deliveries == nil && m.Results == nil && m.Mode == "" && m.IDs == nil {
		return nil
	}
	return &sinkFields{Role: m.Role, Deliveries: m.Deliveries, Results: m.Results, Mode: m.Mode, IDs: m.IDs}
}

func unmarshalJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
