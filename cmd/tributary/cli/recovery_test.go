package cli_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// tributaryBinary builds bin/tributary once per test run, so that tests
// meet the sidecar as a user does: a process with flags, signals and
// listeners.
func tributaryBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tributary-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "tributary")
		out, err := exec.Command("go", "build", "-o", binaryPath, "..").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// sidecarProcess is a running `tributary run`.
type sidecarProcess struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSidecar runs the built binary on cfgFile and stops it (SIGTERM, then
// a check that it exited cleanly) when the test ends.
func startSidecar(t *testing.T, cfgFile string) *sidecarProcess {
	t.Helper()
	p := &sidecarProcess{logs: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(tributaryBinary(t), "run", "-c", cfgFile)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("sidecar exited with %v\n%s", err, p.logs)
			}
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			t.Errorf("sidecar did not stop within 20s of SIGINT\n%s", p.logs)
		}
	})
	return p
}

// readyz returns /readyz's status code and body (0 while nothing answers).
func readyz(admin string) (int, string) {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 50ms for up to d and fails with what last
// said otherwise.
func eventually(t *testing.T, p *sidecarProcess, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s\nsidecar log:\n%s", what, d, last, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postRaw posts a signed delivery and returns the answer.
func postRaw(t *testing.T, url, id, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Delivery-Id", id)
	req.Header.Set("X-Signature", "sha256="+sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// recoveryConfig is sidecarConfig with the stream section given.
func recoveryConfig(t *testing.T, stream string) (cfgFile, admin, hook string) {
	t.Helper()
	dir := t.TempDir()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(sidecarConfig, filepath.Join(dir, "state"), admin, httpAddr)
	cfg = strings.Replace(cfg, "stream: {type: embedded}", stream, 1)
	cfgFile = filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgFile, admin, "http://" + httpAddr + "/hooks/shop"
}

// checkRecovers drives a sidecar whose stream cannot open until fix is
// called: the webhook path asks senders to retry, /readyz says why it is
// not ready, and once the stream can open the sidecar recovers by itself:
// /readyz turns 200, a delivery is accepted and its event can be read back.
func checkRecovers(t *testing.T, cfgFile, admin, hook string, fix func()) {
	p := startSidecar(t, cfgFile)
	eventually(t, p, 20*time.Second, "readyz answers 503 naming the stream", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "stream"), fmt.Sprint(code, body)
	})
	resp, body := postRaw(t, hook, "early-1", `{"id":"A-0","total":1}`)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"error"`) {
		t.Fatalf("delivery before the stream opened answered %d, Retry-After %q, body %q; want 503 with Retry-After and a JSON error", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	time.Sleep(2 * time.Second) // a few failed opens
	fix()
	eventually(t, p, 20*time.Second, "readyz turns 200 after the stream comes back", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	resp, body = postRaw(t, hook, "d-1", `{"id":"A-1","total":12.5}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delivery after recovery answered %d: %s", resp.StatusCode, body)
	}
	out, err := exec.Command(tributaryBinary(t), "events", "tail", "-c", cfgFile, "--from-beginning", "--limit", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("events tail: %v\n%s", err, out)
	}
	var ev map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &ev); err != nil || ev["subject"] != "A-1" {
		t.Fatalf("events tail printed %s (%v), want the event of A-1", out, err)
	}
}

// TestEmbeddedStreamRecoversAfterFailedOpen: the embedded stream's
// directory is blocked by a file at start; once it is removed the sidecar
// recovers without a restart.
func TestEmbeddedStreamRecoversAfterFailedOpen(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile, admin, hook := recoveryConfig(t, fmt.Sprintf("stream: {type: embedded, config: {path: %q}}", filepath.Join(blocker, "stream.db")))
	checkRecovers(t, cfgFile, admin, hook, func() {
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
	})
}

// TestKafkaStreamRecoversAfterFailedOpen: the Kafka stream's broker address
// answers nothing at start; once a broker answers there the sidecar
// recovers without a restart.
func TestKafkaStreamRecoversAfterFailedOpen(t *testing.T) {
	brokers := servicetest.Kafka(t)
	addr := freeAddr(t)
	prefix := fmt.Sprintf("recovery.%d.", time.Now().UnixNano())
	cfgFile, admin, hook := recoveryConfig(t, fmt.Sprintf(`stream:
  type: kafka
  topics: {mode: per_type, prefix: %q}
  dead_letter_topic: %q
  config: {brokers: [%q]}`, prefix, prefix+"deadletter", addr))
	checkRecovers(t, cfgFile, admin, hook, func() { forward(t, addr, brokers[0]) })
}

// forward listens on addr and relays every connection to target, until the
// test ends: the broker "comes back" at the address the sidecar dials.
func forward(t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				u, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				stop := context.AfterFunc(ctx, func() { c.Close(); u.Close() })
				defer stop()
				go io.Copy(u, c)
				_, _ = io.Copy(c, u)
			})
		}
	})
}

// TestFailedConnectorRestartsFromAdmin: a connector stopped by a problem
// only a person can fix (a missing table) makes the sidecar unready and
// says what to do; once the table exists, POST /v1/connectors/{name}/restart
// starts it again without restarting the sidecar, and its rows flow.
func TestFailedConnectorRestartsFromAdmin(t *testing.T) {
	dsn := servicetest.Postgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := fmt.Sprintf("restart_%d", time.Now().UnixNano())
	t.Cleanup(func() { db.Exec("DROP TABLE IF EXISTS " + table) })
	dir := t.TempDir()
	admin := freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(`
state_dir: %s
log: {level: warn}
admin: {address: %s}
shutdown: {timeout: 10s}
connectors:
  - name: crm
    type: sql_poll
    config: {driver: postgres, dsn: %q, table: %s, key: [id], mode: snapshot, schedule: "@every 1s"}
    emit:
      - {name: seen, type: com.example.customer.seen, subject: string(after.id), data: after}
`, filepath.Join(dir, "state"), admin, dsn, table)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSidecar(t, cfgFile)
	eventually(t, p, 20*time.Second, "readyz 503 naming the failed connector and what to do", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "failed") && strings.Contains(body, "create it"), fmt.Sprint(code, body)
	})
	if _, err := db.Exec("CREATE TABLE " + table + " (id int primary key, name text); INSERT INTO " + table + " VALUES (1, 'Ada')"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+admin+"/v1/connectors/crm/restart", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("restart answered %d, want 202", resp.StatusCode)
	}
	eventually(t, p, 20*time.Second, "ready after the restart", func() (bool, string) {
		code, body := readyz(admin)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	eventually(t, p, 20*time.Second, "the row's event emitted", func() (bool, string) {
		var st struct {
			Connectors []struct {
				State         string `json:"state"`
				EventsEmitted int    `json:"events_emitted"`
				Restarts      int    `json:"restarts"`
			} `json:"connectors"`
		}
		resp, err := http.Get("http://" + admin + "/v1/connectors")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&st)
		c := st.Connectors[0]
		return c.State == "running" && c.EventsEmitted == 1 && c.Restarts == 1, fmt.Sprintf("%+v", st)
	})
	resp, err = http.Post("http://"+admin+"/v1/connectors/nope/restart", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("restart of an unknown connector answered %d, want 404", resp.StatusCode)
	}
}

// TestRestartIsLoopbackOnly: until the admin API has authentication, a
// restart from another host is refused.
func TestRestartIsLoopbackOnly(t *testing.T) {
	cfgFile, _, _ := recoveryConfig(t, "stream: {type: embedded}")
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h := sc.AdminHandler()
	for _, tt := range []struct {
		name, remote string
		want         int
	}{
		{name: "another host", remote: "192.0.2.1:4711", want: http.StatusForbidden},
		{name: "ipv4 loopback", remote: "127.0.0.1:4711", want: http.StatusAccepted},
		{name: "ipv6 loopback", remote: "[::1]:4711", want: http.StatusAccepted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/v1/connectors/shop/restart", nil)
			req.RemoteAddr = tt.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("answered %d %s, want %d", w.Code, w.Body, tt.want)
			}
		})
	}
}
