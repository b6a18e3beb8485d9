package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMShutsDownCleanly builds the binary, runs the quickstart-shaped
// sidecar, accepts a delivery, sends SIGTERM and expects exit 0 well within
// the shutdown deadline, with the event durable for the next reader.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tributary")
	bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, "go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	admin, hook := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(dir, "tributary.yaml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `
state_dir: %s
admin: {address: %s}
http: {address: %s}
shutdown: {timeout: 5s}
connectors:
  - name: inbox
    type: webhook
    config: {path: /hooks/in}
    emit:
      - {name: received, type: com.example.thing.received, data: payload}
`, filepath.Join(dir, "state"), admin, hook), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post("http://"+hook+"/hooks/in", "application/json", strings.NewReader(`{"n":1}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("delivery: %v %v", err, resp)
	}
	resp.Body.Close()
	// Wait until the event is on the stream, so that what follows tests the
	// shutdown, not how fast a loaded machine publishes.
	for {
		resp, err := http.Get("http://" + admin + "/v1/connectors/inbox")
		if err == nil {
			var st struct {
				EventsEmitted int `json:"events_emitted"`
			}
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.EventsEmitted == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("event not emitted: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM (deadline 5s)\n%s", logs.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("shutdown took %s, beyond its 5s deadline", d)
	}
	if !strings.Contains(logs.String(), "tributary stopped") {
		t.Fatalf("no clean-stop log line:\n%s", logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "events", "tail", "-c", cfg, "--from-beginning", "--limit", "1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"type":"com.example.thing.received"`) || !strings.Contains(string(out), `"n":1`) {
		t.Fatalf("event after restart: %v\n%s", err, out)
	}
}
