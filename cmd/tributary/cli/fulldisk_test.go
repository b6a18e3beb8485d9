package cli_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// mountTmpfs mounts a tmpfs of the given size at dir. It needs root; where
// mounting is not allowed the test skips, unless services are required (as
// in `make test` and CI, which run as root), where it fails.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs to fill (needs root): %v %s", err, out)
		if servicetest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg + "; `make test` runs this as root")
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// TestFullDiskLosesNothing runs the sidecar with its state (webhook inbox and
// embedded stream) on a tiny file system and posts until the disk is full.
// Deliveries answered 2xx must all reach the stream, once, after space comes
// back; those refused must not; the sidecar must not crash.
func TestFullDiskLosesNothing(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, state, "3m")
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, sidecarConfig, state, admin, httpAddr), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	}()
	waitReady(t, admin)

	hook := "http://" + httpAddr + "/hooks/shop"
	pad := strings.Repeat("x", 900)
	var accepted []string
	refused := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 20000 && len(refused) < 50 && time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("d-%05d", i)
		body := fmt.Sprintf(`{"id":"A-%d","total":%d,"pad":%q}`, i, i, pad)
		switch code := post(t, hook, id, body); {
		case code == 200:
			accepted = append(accepted, id)
		case code == 503 || code == 429:
			refused[id] = true
		default:
			t.Fatalf("delivery %s answered %d", id, code)
		}
	}
	if len(refused) == 0 {
		t.Fatalf("the disk never filled after %d deliveries", len(accepted))
	}
	t.Logf("disk full after %d accepted deliveries; %d refused", len(accepted), len(refused))
	// The refusals must come from the full disk (the inbox could not
	// commit), not from backpressure.
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), fmt.Sprintf(`tributary_webhook_deliveries_rejected_total{connector="shop",reason="unavailable"} %d`, len(refused))) {
		t.Fatalf("refusals were not all for an unavailable inbox:\n%s", metrics)
	}
	select {
	case err := <-done:
		t.Fatalf("sidecar stopped on a full disk: %v", err)
	default:
	}

	// Space comes back: everything accepted must now reach the stream.
	if out, err := exec.Command("mount", "-o", "remount,size=256m", state).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	var st struct {
		Connectors []struct {
			EventsEmitted int `json:"events_emitted"`
			State         string
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		getJSON(t, "http://"+admin+"/v1/connectors", &st)
		if st.Connectors[0].EventsEmitted >= len(accepted) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after space came back: %d of %d accepted deliveries emitted (%+v)", st.Connectors[0].EventsEmitted, len(accepted), st)
		}
		time.Sleep(50 * time.Millisecond)
	}

	code, out, errOut := runCLI(t, "events", "tail", "-c", cfgFile, "--from-beginning", "--limit", fmt.Sprint(len(accepted)))
	if code != 0 {
		t.Fatalf("tail: exit %d %s", code, errOut)
	}
	ids := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ids[eventIDOf(t, line)]++
	}
	for _, d := range accepted {
		want := core.EventID("shop", core.Position{Version: 1, Data: []byte(d)}, "placed")
		if ids[want] != 1 {
			t.Fatalf("accepted delivery %s: its event appears %d times", d, ids[want])
		}
	}
	for d := range refused {
		if ids[core.EventID("shop", core.Position{Version: 1, Data: []byte(d)}, "placed")] != 0 {
			t.Fatalf("refused delivery %s was emitted", d)
		}
	}
}

func waitReady(t *testing.T, admin string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar never became ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventIDOf(t *testing.T, line string) string {
	t.Helper()
	const key = `"id":"`
	i := strings.Index(line, key)
	if i < 0 {
		t.Fatalf("no id in %s", line)
	}
	rest := line[i+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}
