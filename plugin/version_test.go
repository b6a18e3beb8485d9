package plugin_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/plugin"
)

// script is a Conn that plays the sidecar: Recv returns its messages in
// order, then io.EOF; Send records what the plugin sent.
type script struct {
	in   []*plugin.Message
	sent []*plugin.Message
}

func (s *script) Send(m *plugin.Message) error { s.sent = append(s.sent, m); return nil }

func (s *script) Recv() (*plugin.Message, error) {
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	m := s.in[0]
	s.in = s.in[1:]
	return m, nil
}

type idleSource struct{}

func (idleSource) Configure(core.Config) error                         { return nil }
func (idleSource) Open(context.Context, core.Env, core.Position) error { return nil }
func (idleSource) Read(ctx context.Context) ([]core.Change, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (idleSource) Ack(context.Context, core.Position) error { return nil }
func (idleSource) Close(context.Context) error              { return nil }

func TestServeConnHello(t *testing.T) {
	tests := []struct {
		name      string
		offered   []int
		want      int
		wantError string
	}{
		{name: "newest common version", offered: []int{2, 1}, want: 2},
		{name: "version 1 sidecar over JSON Lines", offered: []int{1}, want: 1},
		{name: "no common version", offered: []int{7}, wantError: "sidecar speaks plugin protocols [7], this plugin speaks [2 1]: upgrade the older of the two"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := &script{in: []*plugin.Message{{Type: plugin.TypeHello, Protocols: tt.offered}}}
			err := plugin.ServeConn(context.Background(), idleSource{}, conn, nil)
			if len(conn.sent) != 1 {
				t.Fatalf("sent %d messages, want 1", len(conn.sent))
			}
			reply := conn.sent[0]
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Errorf("ServeConn = %v, want an error containing %q", err, tt.wantError)
				}
				if reply.Type != plugin.TypeError || !reply.Fatal || !strings.Contains(reply.Error, tt.wantError) {
					t.Errorf("reply = %+v, want a fatal error", reply)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reply.Type != plugin.TypeHello || reply.Protocol != tt.want {
				t.Errorf("reply = %+v, want hello with protocol %d", reply, tt.want)
			}
		})
	}
}
