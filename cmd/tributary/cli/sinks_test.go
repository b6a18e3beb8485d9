package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

// sinkSection adds to sidecarConfig an http sink delivering to the
// receiver at %s (the fourth argument) the orders A-* over 10, mapped, with
// the event id in a header, and a disabled sink.
const sinkSection = `
sinks:
  - name: receiver
    type: http
    events: [com.example.order.*]
    subjects: ["A-*"]
    when: event.data.total > 10
    map: {order: event.data.order_id, via: sink}
    retry: {schedule: [50ms]}
    config:
      url: "%s/orders/{{ event.data.order_id }}"
      headers: {X-Event-Id: "{{ event.id }}"}
      body: mapped
  - name: archive
    type: http
    disabled: true
    config: {url: "http://127.0.0.1:1/unused"}
`

// receiver is an HTTP endpoint that records what it receives and answers
// with status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []receivedRequest
	status int
}

type receivedRequest struct {
	Path, Body, EventID string
}

func newReceiver(t *testing.T, status int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, receivedRequest{Path: req.URL.Path, Body: string(body), EventID: req.Header.Get("X-Event-Id")})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []receivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedRequest(nil), r.got...)
}

// sinkSidecar writes sidecarConfig with sinkSection delivering to url and
// builds the sidecar; it returns the sidecar and the admin and hook
// addresses.
func sinkSidecar(t *testing.T, url string) (sc *cli.Sidecar, admin, hook string) {
	t.Helper()
	dir := t.TempDir()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	doc := fmt.Sprintf(sidecarConfig+sinkSection, filepath.Join(dir, "state"), admin, httpAddr, url)
	if err := os.WriteFile(cfgFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return sc, admin, "http://" + httpAddr + "/hooks/shop"
}

// runSidecar runs sc until the test ends and waits until it is ready.
func runSidecar(t *testing.T, sc *cli.Sidecar, admin string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	waitReady(t, admin)
}

// sinkStatus is the part of /v1/sinks/{name} the tests read.
type sinkStatus struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	State        string `json:"state"`
	Error        string `json:"error"`
	Delivered    uint64 `json:"delivered"`
	Skipped      uint64 `json:"skipped"`
	DeadLettered uint64 `json:"dead_lettered"`
}

// waitSink polls /v1/sinks/{name} until cond holds, for at most 20 s.
func waitSink(t *testing.T, admin, name, what string, cond func(sinkStatus) bool) sinkStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st sinkStatus
		code := getJSON(t, "http://"+admin+"/v1/sinks/"+name, &st)
		if code == http.StatusOK && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s never %s: last status %d %+v", name, what, code, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminPost posts to the admin API from loopback and returns the status.
func adminPost(t *testing.T, admin, path string) int {
	t.Helper()
	resp, err := http.Post("http://"+admin+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSidecarDeliversToSink runs the sidecar in process from a webhook
// delivery in to an HTTP receiver out: the sink's subjects skip an order
// of another series and its when a small order, its map shapes the body, /v1/sinks counts both, and a delivery
// made while the sink is paused arrives once it is resumed.
func TestSidecarDeliversToSink(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK)
	sc, admin, hook := sinkSidecar(t, rcv.URL)
	runSidecar(t, sc, admin)

	if code := post(t, hook, "d-0", `{"id":"B-9","total":50}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	if code := post(t, hook, "d-1", `{"id":"A-1","total":5}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	if code := post(t, hook, "d-2", `{"id":"A-2","total":12.5}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	// B-9 is outside subjects, A-1 fails when: both skipped.
	st := waitSink(t, admin, "receiver", "delivered A-2", func(s sinkStatus) bool { return s.Delivered == 1 && s.Skipped == 2 })
	if st.Type != "http" || st.State != "running" || st.DeadLettered != 0 {
		t.Errorf("status = %+v", st)
	}
	got := rcv.requests()
	id := core.EventID("shop", core.Position{Version: 1, Data: []byte("d-2")}, "placed")
	if len(got) != 1 || got[0].Path != "/orders/A-2" || got[0].EventID != id {
		t.Fatalf("receiver got %+v, want one request for /orders/A-2 with event id %s", got, id)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(got[0].Body), &body); err != nil || body["order"] != "A-2" || body["via"] != "receiver" || len(body) != 2 {
		t.Errorf("body = %s (%v), want the sink's map", got[0].Body, err)
	}

	var list struct {
		Sinks []sinkStatus `json:"sinks"`
	}
	if code := getJSON(t, "http://"+admin+"/v1/sinks", &list); code != http.StatusOK || len(list.Sinks) != 2 {
		t.Fatalf("/v1/sinks = %d %+v, want both sinks", code, list)
	}
	if s := list.Sinks[0]; s.Name != "receiver" || s.Delivered != 1 {
		t.Errorf("/v1/sinks[0] = %+v, want receiver with 1 delivered", s)
	}
	if s := list.Sinks[1]; s.Name != "archive" || s.State != "disabled" {
		t.Errorf("/v1/sinks[1] = %+v, want archive disabled", s)
	}

	if code := adminPost(t, admin, "/v1/sinks/receiver/pause"); code != http.StatusOK {
		t.Fatalf("pause answered %d", code)
	}
	waitSink(t, admin, "receiver", "paused", func(s sinkStatus) bool { return s.State == "paused" })
	if code := post(t, hook, "d-3", `{"id":"A-3","total":40}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	if code := adminPost(t, admin, "/v1/sinks/receiver/resume"); code != http.StatusOK {
		t.Fatalf("resume answered %d", code)
	}
	waitSink(t, admin, "receiver", "delivered A-3 after resuming", func(s sinkStatus) bool { return s.Delivered == 2 && s.State == "running" })
	if got := rcv.requests(); len(got) != 2 || got[1].Path != "/orders/A-3" {
		t.Errorf("receiver got %+v, want A-3 second", got)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("tributary_sink_")) {
		t.Error("metrics have no tributary_sink_ series")
	}
}

// TestFailedSinkMakesSidecarUnready: a target that answers 410 Gone fails
// its sink, which /readyz reports as it reports a failed connector.
func TestFailedSinkMakesSidecarUnready(t *testing.T) {
	rcv := newReceiver(t, http.StatusGone)
	sc, admin, hook := sinkSidecar(t, rcv.URL)
	runSidecar(t, sc, admin)

	if code := post(t, hook, "d-1", `{"id":"A-1","total":50}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	st := waitSink(t, admin, "receiver", "failed", func(s sinkStatus) bool { return s.State == "failed" })
	if !strings.Contains(st.Error, "410") {
		t.Errorf("error = %q, want the 410 named", st.Error)
	}
	var ready struct {
		Ready    bool              `json:"ready"`
		NotReady map[string]string `json:"not_ready"`
	}
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || ready.Ready || !strings.HasPrefix(ready.NotReady["sink:receiver"], "failed") {
		t.Errorf("readyz = %d %+v, want 503 with sink:receiver failed", resp.StatusCode, ready)
	}
}

// TestSinkAdminEndpoints checks the sink endpoints' answers on a built
// sidecar: status, 404 for an unknown sink, 409 for a disabled one, and
// pause and resume refused from another host.
func TestSinkAdminEndpoints(t *testing.T) {
	sc, _, _ := sinkSidecar(t, "http://127.0.0.1:1")
	h := sc.AdminHandler()
	tests := []struct {
		name, method, path, remote string
		want                       int
		body                       string // a part of the answer
	}{
		{name: "list", method: "GET", path: "/v1/sinks", want: http.StatusOK, body: `"name": "receiver"`},
		{name: "one", method: "GET", path: "/v1/sinks/receiver", want: http.StatusOK, body: `"type": "http"`},
		{name: "unknown", method: "GET", path: "/v1/sinks/nope", want: http.StatusNotFound, body: "no sink named nope"},
		{name: "pause from another host", method: "POST", path: "/v1/sinks/receiver/pause", remote: "192.0.2.1:4711", want: http.StatusForbidden, body: "loopback only"},
		{name: "resume from another host", method: "POST", path: "/v1/sinks/receiver/resume", remote: "192.0.2.1:4711", want: http.StatusForbidden, body: "loopback only"},
		{name: "pause from loopback", method: "POST", path: "/v1/sinks/receiver/pause", remote: "127.0.0.1:4711", want: http.StatusOK, body: `"status": "paused"`},
		{name: "resume from ipv6 loopback", method: "POST", path: "/v1/sinks/receiver/resume", remote: "[::1]:4711", want: http.StatusOK, body: `"status": "resumed"`},
		{name: "pause an unknown sink", method: "POST", path: "/v1/sinks/nope/pause", remote: "127.0.0.1:4711", want: http.StatusNotFound, body: "nope"},
		{name: "pause a disabled sink", method: "POST", path: "/v1/sinks/archive/pause", remote: "127.0.0.1:4711", want: http.StatusConflict, body: "disabled"},
		{name: "pause by GET", method: "GET", path: "/v1/sinks/receiver/pause", want: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.body) {
				t.Errorf("answered %d %s, want %d with %q", w.Code, w.Body, tt.want, tt.body)
			}
		})
	}
}

// TestConnectorsListsSinkTypes: `tributary connectors` lists sink types
// with their fields, as text and as JSON.
func TestConnectorsListsSinkTypes(t *testing.T) {
	code, out, _ := runCLI(t, "connectors")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	_, sinks, ok := strings.Cut(out, "\nSINKS\n")
	if !ok || !strings.Contains(sinks, "\n  http\n") || !strings.Contains(sinks, "signing_secrets") {
		t.Errorf("connectors output has no SINKS section listing http and its keys:\n%s", out)
	}
	code, out, _ = runCLI(t, "connectors", "--json")
	if code != 0 {
		t.Fatalf("--json exit %d", code)
	}
	var list []struct {
		Kind, Type string
		Fields     []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list {
		if e.Kind == "sink" && e.Type == "http" && len(e.Fields) > 0 {
			found = true
		}
	}
	if !found {
		t.Errorf("--json lists no sink of type http with fields: %s", out)
	}
}

// TestDisabledSinkOfUnknownTypeBuilds: a slim build keeps a disabled sink
// of a type it does not have in the file; the sidecar builds, warns, runs
// and lists the sink as disabled.
func TestDisabledSinkOfUnknownTypeBuilds(t *testing.T) {
	dir, admin := t.TempDir(), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	doc := fmt.Sprintf(sidecarConfig+`
sinks:
  - name: archive
    type: sftp_drop
    disabled: true
    config: {host: files.example.com}
`, filepath.Join(dir, "state"), admin, freeAddr(t))
	if err := os.WriteFile(cfgFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, &log)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if !strings.Contains(log.String(), `unknown sink type \"sftp_drop\" in a disabled sink`) {
		t.Errorf("log lacks the warning:\n%s", log.String())
	}
	runSidecar(t, sc, admin)
	waitSink(t, admin, "archive", "disabled", func(s sinkStatus) bool { return s.State == "disabled" && s.Type == "sftp_drop" })
}
