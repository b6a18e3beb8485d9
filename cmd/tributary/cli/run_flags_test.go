package cli_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

const quickstart = "../../../examples/quickstart/tributary.yaml"

// busyAddr returns an address a listener holds until the test ends, so that
// a sidecar told to listen there fails.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// waitReady polls the admin API's /readyz until it answers 200.
func waitReadyz(t *testing.T, admin string, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatal("the sidecar exited before it was ready")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 200 from http://%s/readyz within 20s", admin)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCommand runs `tributary run` with args until the test ends.
type runCommand struct {
	stop   func()
	done   chan struct{}
	code   int
	stderr strings.Builder
}

func startRunCommand(t *testing.T, args ...string) *runCommand {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sc := &runCommand{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(sc.done)
		sc.code = cli.RunContext(ctx, core.DefaultRegistry, append([]string{"run"}, args...), io.Discard, &lockedWriter{b: &sc.stderr})
	}()
	t.Cleanup(func() {
		sc.stop()
		<-sc.done
	})
	return sc
}

// retryWhile503 sends again, as a webhook sender is told to, while the
// answer is 503 (the connector is still starting), for up to 20 seconds.
func retryWhile503(t *testing.T, send func() int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code := send()
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return code
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunFlagsOverrideListenAddresses: --http and --admin move the
// listeners the file names (here held by another process) elsewhere.
func TestRunFlagsOverrideListenAddresses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, sidecarConfig, filepath.Join(dir, "state"), busyAddr(t), busyAddr(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	admin, httpAddr := freeAddr(t), freeAddr(t)
	sc := startRunCommand(t, "-c", file, "--http", httpAddr, "--admin", admin)
	waitReadyz(t, admin, sc.done)
	code := retryWhile503(t, func() int {
		return post(t, "http://"+httpAddr+"/hooks/shop", "d-1", `{"id":"A-1","total":1}`)
	})
	if code != http.StatusOK {
		t.Fatalf("delivery to the --http address answered %d", code)
	}
	sc.stop()
	<-sc.done
	if sc.code != 0 {
		t.Fatalf("run exited %d\n%s", sc.code, sc.stderr.String())
	}
}

func TestRunFlagsRejectBadAddresses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, sidecarConfig, filepath.Join(dir, "state"), freeAddr(t), freeAddr(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "http without port", args: []string{"--http", "localhost"}, want: `--http "localhost": not a listen address`},
		{name: "admin with a named port", args: []string{"--admin", "127.0.0.1:http"}, want: `--admin "127.0.0.1:http": not a listen address`},
		{name: "http empty", args: []string{"--http", ""}, want: `--http "": not a listen address`},
		{name: "admin on every address without tokens", args: []string{"--admin", "0.0.0.0:0"}, want: `--admin "0.0.0.0:0" is not a loopback address, and the admin API acts on the sidecar: set admin.auth.tokens`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut, ended := runCLIWithin(t, 10*time.Second, append([]string{"run", "-c", file}, tc.args...)...)
			if !ended {
				t.Fatalf("run %v kept running instead of failing", tc.args)
			}
			if code != cli.ExitInvalid || !strings.Contains(errOut, tc.want) {
				t.Fatalf("run %v: exit %d, stderr %q; want exit %d naming %q", tc.args, code, errOut, cli.ExitInvalid, tc.want)
			}
		})
	}
}

// startQuickstart runs the quickstart on free ports, with its state in a
// temporary directory, and waits until it is ready; it returns the HTTP
// listener's address.
func startQuickstart(t *testing.T) (string, *runCommand) {
	t.Helper()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	t.Setenv("TRIBUTARY_ADMIN_ADDRESS", admin)
	t.Setenv("TRIBUTARY_HTTP_ADDRESS", httpAddr)
	t.Setenv("TRIBUTARY_STATE_DIR", t.TempDir())
	t.Setenv("DEMO_WEBHOOK_SECRET", "")
	sc := startRunCommand(t, "-c", quickstart)
	waitReadyz(t, admin, sc.done)
	return httpAddr, sc
}

// TestQuickstartOnOtherPorts runs the quickstart as a new user would when
// its default ports are taken: the addresses (and the state directory) come
// from the environment, a signed delivery goes in, and `events tail
// --no-follow` prints its event and exits.
func TestQuickstartOnOtherPorts(t *testing.T) {
	httpAddr, sc := startQuickstart(t)

	body := `{"event":"order.placed","order":{"id":"A-1001","customer":"C-42","total":129.90,"currency":"EUR","lines":[{"sku":"KB-1","qty":1}]}}`
	mac := hmac.New(sha256.New, []byte("quickstart-secret"))
	mac.Write([]byte(body))
	code := retryWhile503(t, func() int {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/hooks/demo", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Delivery-Id", "delivery-A-1001")
		req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	})
	if code != http.StatusOK {
		t.Fatalf("quickstart delivery answered %d", code)
	}
	sc.stop()
	<-sc.done
	if sc.code != 0 {
		t.Fatalf("run exited %d\n%s", sc.code, sc.stderr.String())
	}

	code, out, errOut, ended := runCLIWithin(t, 20*time.Second, "events", "tail", "-c", quickstart, "--no-follow")
	if !ended || code != 0 {
		t.Fatalf("tail --no-follow: exit %d, ended by itself %v\n%s", code, ended, errOut)
	}
	if !strings.Contains(out, `"subject":"A-1001"`) || strings.Count(out, "\n") != 1 {
		t.Fatalf("tail --no-follow printed %q, want the one event of A-1001", out)
	}
}

// lockedWriter serialises writes to b: the sidecar logs from several
// goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
