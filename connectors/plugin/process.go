package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/tributary/tributary/plugin"
	"github.com/tributary/tributary/plugin/pluginpb"
)

// process is one running plugin executable and its message channel.
type process interface {
	Conn() plugin.Conn
	PID() int
	// Kill stops the process at once.
	Kill()
	// CloseSend ends the sending side of the transport, so the plugin
	// reads its end. It must not run concurrently with a send.
	CloseSend()
	// Stop ends the session's transport and waits for the process to exit
	// until ctx is done, then kills it.
	Stop(ctx context.Context)
	// Exit describes how the process ended, once it has; "" while it runs.
	Exit() string
}

func (s *Source) command() *exec.Cmd { return command(s.cfg, plugin.RoleSource) }

// command returns the plugin's command for cfg, started for role.
func command(cfg Config, role string) *exec.Cmd {
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Env = os.Environ()
	for k, v := range cfg.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, plugin.EnvTransport+"="+cfg.Transport, plugin.EnvRole+"="+role)
	isolate(cmd)
	return cmd
}

// jsonlProcess speaks JSON Lines on the plugin's stdin and stdout.
type jsonlProcess struct {
	cmd    *exec.Cmd
	conn   plugin.Conn
	stdin  *os.File
	stdout *os.File
	exited chan struct{}
	mu     sync.Mutex
	exit   string
}

func startJSONL(cmd *exec.Cmd, stderr *logWriter) (*jsonlProcess, error) {
	cmd.Env = append(cmd.Env, plugin.EnvCookie+"="+plugin.CookieValue)
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("create stdout pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, stderr
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	p := &jsonlProcess{cmd: cmd, stdin: inW, stdout: outR, exited: make(chan struct{}), conn: plugin.NewJSONConn(outR, inW)}
	go func() {
		err := cmd.Wait()
		stderr.Flush()
		p.mu.Lock()
		if err != nil {
			p.exit = err.Error()
		} else {
			p.exit = "exit status 0"
		}
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

func (p *jsonlProcess) Conn() plugin.Conn { return p.conn }
func (p *jsonlProcess) PID() int          { return p.cmd.Process.Pid }
func (p *jsonlProcess) Kill()             { killTree(p.cmd.Process) }

func (p *jsonlProcess) Exit() string {
	// The exit status may trail the end of stdout by a moment.
	select {
	case <-p.exited:
	case <-time.After(time.Second):
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

func (p *jsonlProcess) CloseSend() { _ = p.stdin.Close() }

func (p *jsonlProcess) Stop(ctx context.Context) {
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.Kill()
		<-p.exited
	}
	p.stdout.Close()
}

// grpcWindow is the HTTP/2 flow-control window of the plugin's changes:
// how many bytes it may send ahead of this side's reading.
const grpcWindow = 4 << 20

// grpcProcess speaks gRPC through go-plugin.
type grpcProcess struct {
	client *goplugin.Client
	conn   plugin.Conn
	stream interface{ CloseSend() error }
	cancel context.CancelFunc
	pid    int
}

func startGRPC(cmd *exec.Cmd, stderr *logWriter, startTimeout time.Duration) (*grpcProcess, error) {
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake(),
		VersionedPlugins: map[int]goplugin.PluginSet{
			plugin.ProtocolVersion: {plugin.PluginName: &plugin.GRPCPlugin{}},
		},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
		Stderr:           stderr,
		SyncStderr:       stderr,
		SyncStdout:       stderr,
		StartTimeout:     startTimeout,
		// HTTP/2's default 64 KiB window holds a fraction of one batch of
		// changes, so the plugin would stall mid-batch until this side had
		// decoded the one before. A window of a few batches lets the two
		// work at once; credits still bound how many changes are in flight.
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(grpcWindow),
			grpc.WithInitialConnWindowSize(grpcWindow),
		},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, err
	}
	raw, err := rpc.Dispense(plugin.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("dispense %q: %w", plugin.PluginName, err)
	}
	sc, ok := raw.(pluginpb.SourceClient)
	if !ok {
		client.Kill()
		return nil, errors.New("the plugin served an unexpected type; rebuild it with this version of plugin.Serve")
	}
	sctx, cancel := context.WithCancel(context.Background())
	stream, err := sc.Session(sctx)
	if err != nil {
		cancel()
		client.Kill()
		return nil, fmt.Errorf("start session: %w", err)
	}
	p := &grpcProcess{client: client, conn: plugin.NewGRPCConn(stream), stream: stream, cancel: cancel}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	return p, nil
}

func (p *grpcProcess) Conn() plugin.Conn { return p.conn }
func (p *grpcProcess) PID() int          { return p.pid }

func (p *grpcProcess) Kill() {
	if p.pid > 0 {
		if proc, err := os.FindProcess(p.pid); err == nil {
			killTree(proc)
		}
	}
}

func (p *grpcProcess) Exit() string {
	if p.client.Exited() {
		return "exited"
	}
	return ""
}

func (p *grpcProcess) CloseSend() { _ = p.stream.CloseSend() }

func (p *grpcProcess) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		// Kill asks the plugin to shut down, and kills it after two
		// seconds.
		p.client.Kill()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.Kill()
		<-done
	}
	p.cancel()
}
