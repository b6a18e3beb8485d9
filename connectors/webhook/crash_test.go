package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// crashDirEnv, when set, makes TestKillDuringLoad act as the sidecar that
// serves deliveries with its state in that directory until it is killed.
const crashDirEnv = "TRIBUTARY_WEBHOOK_CRASH_DIR"

// TestKillDuringLoad proves that a delivery answered 2xx survives kill -9
// of the sidecar in the middle of its group commits: a child process runs
// the demo connector on the embedded stream, concurrent senders post
// deliveries to it, the test kills it with SIGKILL while they still send,
// restarts the sidecar in this process on the same state directory, and
// finds on the stream the event of every delivery that was answered 2xx.
func TestKillDuringLoad(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		serveUntilKilled(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	url := ""
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
			url = u
			break
		}
	}
	if url == "" {
		t.Fatalf("the child sidecar never said where it listens")
	}
	go func() {
		for lines.Scan() {
		}
	}()

	const (
		senders   = 16
		killAfter = 3000
	)
	var (
		mu       sync.Mutex
		accepted []string
		total    atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	for g := range senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("k-%d-%d", g, i)
				code, err := postSigned(client, url, id, i)
				if err != nil {
					return // the sidecar is gone
				}
				if code != http.StatusOK {
					continue
				}
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
				if total.Add(1) >= killAfter {
					killOnce.Do(func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		})
	}
	wg.Wait()
	_ = cmd.Wait()
	if total.Load() < killAfter {
		t.Fatalf("the senders stopped after %d deliveries, before the kill", total.Load())
	}
	t.Logf("sidecar killed after %d deliveries answered 200", len(accepted))

	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()
	st := embeddedStream(t, dir)
	sc := startSidecar(t, dir, router, st)
	defer sc.stop()
	want := map[string]string{}
	for _, id := range accepted {
		want[core.EventID("demo_orders", core.Position{Version: 1, Data: []byte(id)}, "order_received")] = id
	}
	sub, err := st.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	for len(want) > 0 {
		select {
		case m := <-msgs:
			delete(want, m.UUID)
			m.Ack()
		case <-ctx.Done():
			var some []string
			for _, id := range want {
				if len(some) < 5 {
					some = append(some, id)
				}
			}
			t.Fatalf("%d of %d deliveries answered 200 have no event after kill -9 and a restart, such as %v", len(want), len(accepted), some)
		}
	}
}

// serveUntilKilled runs the demo connector on the embedded stream in dir
// on a loopback listener, prints its URL and serves for a minute at most.
func serveUntilKilled(t *testing.T, dir string) {
	router := runtime.NewRouter()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	sc := startSidecar(t, dir, router, embeddedStream(t, dir))
	fmt.Printf("listening http://%s\n", ln.Addr())
	time.Sleep(time.Minute)
	sc.stop()
	_ = srv.Close()
}

// postSigned posts the demo connector's signed delivery n with id, and
// returns the answer's status; it is safe for concurrent use.
func postSigned(client *http.Client, url, id string, n int) (int, error) {
	body := fmt.Appendf(nil, `{"id":"o-%d","customer":"ada","total":"%d.50"}`, n, n)
	m := hmac.New(sha256.New, []byte(demoSecret))
	m.Write(body)
	req, err := http.NewRequest(http.MethodPost, url+"/hooks/demo", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-Request-Id", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
