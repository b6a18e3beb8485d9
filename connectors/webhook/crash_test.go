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

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// crashDirEnv, when set, makes TestKillDuringLoad act as the sidecar that
// serves deliveries with its state in that directory until it is killed;
// crashAckEnv is then its connector's ack mode.
const (
	crashDirEnv = "TRIBUTARY_WEBHOOK_CRASH_DIR"
	crashAckEnv = "TRIBUTARY_WEBHOOK_CRASH_ACK"
)

// TestKillDuringLoad proves that a delivery answered 2xx survives kill -9
// of the sidecar in the middle of its writes, with ack: inbox (the
// inbox's group commits) and ack: stream (the stream's): a child process
// runs the demo connector on the embedded stream, concurrent senders post
// deliveries to it, the test kills it with SIGKILL while they still send,
// restarts the sidecar in this process on the same state directory, and
// finds on the stream the event of every delivery that was answered 2xx.
// Then the senders send every delivery again, as a sender that lost its
// answers would: each is answered 200, and whatever is emitted again
// carries the event id it had (ids derive from the delivery id), so the
// stream holds no event of a delivery under two ids.
func TestKillDuringLoad(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		serveUntilKilled(t, dir, os.Getenv(crashAckEnv))
		return
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: spawns a child process")
	}
	for _, tc := range []struct {
		name string
		ack  string
	}{
		{name: "inbox", ack: "inbox"},
		{name: "stream", ack: "stream"},
	} {
		t.Run(tc.name, func(t *testing.T) { killDuringLoad(t, tc.ack) })
	}
}

func killDuringLoad(t *testing.T, ack string) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringLoad$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAckEnv+"="+ack)
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
	type delivery struct {
		id string
		n  int
	}
	var (
		mu       sync.Mutex
		accepted []delivery
		sent     []delivery
		total    atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	for g := range senders {
		wg.Go(func() {
			for i := 0; ; i++ {
				d := delivery{id: fmt.Sprintf("k-%d-%d", g, i), n: i}
				mu.Lock()
				sent = append(sent, d)
				mu.Unlock()
				code, err := postSigned(client, url, d.id, d.n)
				if err != nil {
					return // the sidecar is gone
				}
				if code != http.StatusOK {
					continue
				}
				mu.Lock()
				accepted = append(accepted, d)
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
	t.Logf("ack: %s: sidecar killed after %d deliveries answered 200", ack, len(accepted))

	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()
	st := embeddedStream(t, dir)
	sc := startSidecarOn(t, dir, router, st, "events", func(v map[string]any) { v["ack"] = ack })
	defer sc.stop()
	eventID := func(id string) string {
		return core.EventID("demo_orders", core.Position{Version: 1, Data: []byte(id)}, "order_received")
	}
	want := map[string]string{}
	for _, d := range accepted {
		want[eventID(d.id)] = d.id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs := subscribeEvents(ctx, t, st)
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

	// Every delivery sent again, answered or not: each is answered 200
	// (a duplicate, or delivered now), and the stream then holds, for
	// each delivery, events under its one id only.
	statuses := map[int]int{}
	for _, d := range sent {
		code, err := postSigned(srv.Client(), srv.URL, d.id, d.n)
		if err != nil {
			t.Fatalf("send %s again: %v", d.id, err)
		}
		statuses[code]++
		if code != http.StatusOK {
			t.Fatalf("%s sent again after the restart = %d, want 200", d.id, code)
		}
	}
	known := map[string]bool{}
	for _, d := range sent {
		known[eventID(d.id)] = true
	}
	all := subscribeEvents(ctx, t, st)
	emitted := map[string]int{}
	for {
		select {
		case m := <-all:
			if !known[m.UUID] {
				t.Fatalf("event %s on the stream is no delivery's: an event id that does not derive from its delivery id", m.UUID)
			}
			emitted[m.UUID]++
			m.Ack()
			continue
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		break
	}
	if len(emitted) != len(known) {
		t.Fatalf("%d of %d deliveries sent and answered 200 have an event", len(emitted), len(known))
	}
	again := 0
	for _, n := range emitted {
		again += n - 1
	}
	t.Logf("ack: %s: %d deliveries sent, %d events on the stream, %d of them a delivery emitted again under its same id", ack, len(sent), len(emitted)+again, again)
}

// subscribeEvents reads the events topic of st from the beginning.
func subscribeEvents(ctx context.Context, t *testing.T, st core.Stream) <-chan *message.Message {
	t.Helper()
	sub, err := st.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	msgs, err := sub.Subscribe(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// serveUntilKilled runs the demo connector with ack mode ack on the
// embedded stream in dir on a loopback listener, prints its URL and serves
// for a minute at most.
func serveUntilKilled(t *testing.T, dir, ack string) {
	router := runtime.NewRouter()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	sc := startSidecarOn(t, dir, router, embeddedStream(t, dir), "events", func(v map[string]any) { v["ack"] = ack })
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
