package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
)

// runInProcess builds the sidecar of file and runs it until stop, which
// waits for it to end.
func runInProcess(t *testing.T, file, admin string) (stop func()) {
	t.Helper()
	sc, err := cli.Build(core.DefaultRegistry, file, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	}
	t.Cleanup(stop)
	waitReady(t, admin)
	return stop
}

// waitHooks waits up to 30 s until r has received n requests.
func waitHooks(t *testing.T, r *hookReceiver, n int) []hook {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs := r.hooks()
		if len(hs) >= n {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d requests, want %d: %v", len(hs), n, r.labels())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replays returns the replays the audit log of sink name in dir records.
func replays(t *testing.T, dir, name string) []audit.Replay {
	t.Helper()
	ctx := context.Background()
	db, err := audit.Open(ctx, audit.Config{Driver: audit.DriverSQLite, Path: "audit.db", TablePrefix: "audit_", MaxConns: 1}, filepath.Join(dir, "state", "sinks", name))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := audit.Replays(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// idsOf returns the webhook-id of each of hs.
func idsOf(hs []hook) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	slices.Sort(out)
	return out
}

// TestReplayRedeliversTimeRange runs a sidecar with an http sink and an
// audit sink, on the embedded stream and on Kafka: the admin endpoint,
// then `events replay` with the sidecar stopped, deliver exactly the
// events of a time range again (a dry run nothing), each replay is
// recorded in the audit log with who asked, and the sink's consumer group
// did not move: the next run delivers only the event published since.
func TestReplayRedeliversTimeRange(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		rcv := newHookReceiver(t, nil)
		out, auditName := e.name("out"), e.name("audit_log")
		file := e.write("", httpSink(out, rcv.URL, "50ms", "")+"  - name: "+auditName+"\n    type: audit\n")
		stop := runInProcess(t, file, e.admin)

		postEvents(t, e.hook, "A/1", "B/1")
		time.Sleep(100 * time.Millisecond)
		since := time.Now().UTC().Format(time.RFC3339Nano)
		postEvents(t, e.hook, "A/2", "B/2")
		time.Sleep(100 * time.Millisecond)
		until := time.Now().UTC().Format(time.RFC3339Nano)
		postEvents(t, e.hook, "A/3")
		waitHooks(t, rcv, 5)
		want := []string{eventID("A/2"), eventID("B/2")}
		slices.Sort(want)

		body := `{"since": "` + since + `", "until": "` + until + `"}`
		var dry struct {
			Count  int64            `json:"count"`
			Events []map[string]any `json:"events"`
		}
		if code := adminReplay(t, e.admin, out, `{"since": "`+since+`", "until": "`+until+`", "dry_run": true}`, &dry); code != http.StatusOK || dry.Count != 2 || len(dry.Events) != 2 {
			t.Fatalf("dry run answered %d %+v, want 200 with 2 events", code, dry)
		}
		var acc struct {
			Count int64 `json:"count"`
		}
		if code := adminReplay(t, e.admin, out, body, &acc); code != http.StatusAccepted || acc.Count != 2 {
			t.Fatalf("replay answered %d %+v, want 202 with a count of 2", code, acc)
		}
		hs := waitHooks(t, rcv, 7)
		if got := idsOf(hs[5:]); !slices.Equal(got, want) {
			t.Errorf("the admin replay delivered %v, want %v", got, want)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(replays(t, e.dir, auditName)) == 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if rs := replays(t, e.dir, auditName); len(rs) != 1 || rs[0].Sink != out || rs[0].Count != 2 || !strings.HasPrefix(rs[0].Who, "127.0.0.1:") || rs[0].Filter.Since.IsZero() {
			t.Errorf("replays recorded: %+v, want the admin's with a count of 2", rs)
		}
		stop()

		args := []string{"events", "replay", "-c", file, "--sink", out, "--since", since, "--until", until}
		code, stdout, stderr, _ := runCLIWithin(t, 60*time.Second, append(args, "--dry-run")...)
		if code != 0 || !strings.Contains(stdout, "2 events would be delivered") || strings.Count(stdout, "com.example.order.placed") != 2 {
			t.Fatalf("replay --dry-run: exit %d\n%s%s", code, stdout, stderr)
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(rcv.hooks()); n != 7 {
			t.Errorf("the dry run delivered: the receiver has %d requests, want 7", n)
		}
		code, stdout, stderr, _ = runCLIWithin(t, 60*time.Second, args...)
		if code != 0 || !strings.Contains(stdout, "replayed 2 events") || !strings.Contains(stdout, "recorded in the audit log") {
			t.Fatalf("replay: exit %d\n%s%s", code, stdout, stderr)
		}
		hs = waitHooks(t, rcv, 9)
		if got := idsOf(hs[7:]); !slices.Equal(got, want) {
			t.Errorf("the replay delivered %v, want %v", got, want)
		}
		rs := replays(t, e.dir, auditName)
		u, _ := user.Current()
		if len(rs) != 2 || rs[1].Count != 2 || u == nil || rs[1].Who != u.Username {
			t.Errorf("replays recorded: %+v, want a second one by the OS user with a count of 2", rs)
		}

		runInProcess(t, file, e.admin)
		postEvents(t, e.hook, "B/3")
		hs = waitHooks(t, rcv, 10)
		time.Sleep(500 * time.Millisecond)
		if hs = rcv.hooks(); len(hs) != 10 || hs[9].ID != eventID("B/3") {
			t.Errorf("after the replays the sink delivered %v, want only B/3 (no repeat, no skip)", rcv.labels()[9:])
		}
	})
}

// adminReplay posts body to /v1/sinks/{name}/replay from loopback and
// decodes the answer into v.
func adminReplay(t *testing.T, admin, name, body string, v any) int {
	t.Helper()
	resp, err := http.Post("http://"+admin+"/v1/sinks/"+name+"/replay", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("replay answer: %v", err)
	}
	return resp.StatusCode
}

// TestReplayEndpointRefusals: the replay endpoint's answers that need no
// running sidecar.
func TestReplayEndpointRefusals(t *testing.T) {
	sc, _, _ := sinkSidecar(t, "http://127.0.0.1:1")
	h := sc.AdminHandler()
	tests := []struct {
		name, path, remote, body string
		want                     int
		answer                   string // a part of the answer
	}{
		{name: "from another host", path: "/v1/sinks/receiver/replay", remote: "192.0.2.1:4711", want: http.StatusForbidden, answer: "loopback only"},
		{name: "unknown sink", path: "/v1/sinks/nope/replay", remote: "127.0.0.1:4711", want: http.StatusNotFound, answer: "nope"},
		{name: "unknown sink, dry run", path: "/v1/sinks/nope/replay", remote: "127.0.0.1:4711", body: `{"dry_run": true}`, want: http.StatusNotFound, answer: "nope"},
		{name: "disabled sink", path: "/v1/sinks/archive/replay", remote: "127.0.0.1:4711", want: http.StatusConflict, answer: "disabled"},
		{name: "sink not running", path: "/v1/sinks/receiver/replay", remote: "127.0.0.1:4711", want: http.StatusConflict, answer: "resume it or wait"},
		{name: "bad time", path: "/v1/sinks/receiver/replay", remote: "127.0.0.1:4711", body: `{"since": "yesterday"}`, want: http.StatusBadRequest, answer: "RFC 3339"},
		{name: "empty range", path: "/v1/sinks/receiver/replay", remote: "127.0.0.1:4711", body: `{"since": "1h", "until": "2h"}`, want: http.StatusBadRequest, answer: "not after"},
		{name: "unknown key", path: "/v1/sinks/receiver/replay", remote: "127.0.0.1:4711", body: `{"from": "1h"}`, want: http.StatusBadRequest, answer: "from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", tt.path, strings.NewReader(tt.body))
			req.RemoteAddr = tt.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.answer) {
				t.Errorf("answered %d %s, want %d with %q", w.Code, w.Body, tt.want, tt.answer)
			}
		})
	}
}

// TestReplayCommandRefusals: flags `events replay` refuses before it
// opens anything.
func TestReplayCommandRefusals(t *testing.T) {
	sc, _, _ := sinkSidecar(t, "http://127.0.0.1:1")
	file := sc.Config.File
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no sink", args: nil, want: "--sink is required"},
		{name: "unknown sink", args: []string{"--sink", "nope"}, want: `--sink "nope"`},
		{name: "bad since", args: []string{"--sink", "receiver", "--since", "monday"}, want: "RFC 3339"},
		{name: "empty range", args: []string{"--sink", "receiver", "--since", "1h", "--until", "2h"}, want: "not after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append([]string{"events", "replay", "-c", file}, tt.args...)...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}
