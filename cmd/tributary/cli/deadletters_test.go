package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// adminDo sends method to the admin API with body (JSON) and decodes the
// answer into v.
func adminDo(t *testing.T, method, url, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s answered %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type deadLetterList struct {
	Error       string `json:"error"`
	Count       int    `json:"count"`
	DeadLetters []struct {
		ID        string          `json:"id"`
		Connector string          `json:"connector"`
		Rule      string          `json:"rule"`
		Reason    string          `json:"reason"`
		Error     string          `json:"error"`
		Change    json.RawMessage `json:"change"`
		Status    string          `json:"status"`
		Action    *struct {
			Action string   `json:"action"`
			By     string   `json:"by"`
			Events []string `json:"events"`
		} `json:"action"`
	} `json:"dead_letters"`
}

// waitDeadLetters polls GET /v1/deadletters?query until it lists n.
func waitDeadLetters(t *testing.T, admin, query string, n int) deadLetterList {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var l deadLetterList
		code := getJSON(t, "http://"+admin+"/v1/deadletters?"+query, &l)
		if code == http.StatusOK && l.Count == n {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/deadletters?%s: %d %+v, want %d", query, code, l, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeadLettersListRetryDrop dead-letters a change that breaks the
// catalog's schema, lists and shows it, retries it in vain, then relaxes
// the schema, restarts the sidecar and retries it: the event reaches the
// stream, the dead letter is marked retried with who asked. A bulk drop by
// reason marks another dropped.
func TestDeadLettersListRetryDrop(t *testing.T) {
	dir := t.TempDir()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	strict := fmt.Sprintf(sidecarConfig, filepath.Join(dir, "state"), admin, httpAddr)
	if err := os.WriteFile(cfgFile, []byte(strict), 0o644); err != nil {
		t.Fatal(err)
	}
	hook := "http://" + httpAddr + "/hooks/shop"
	stop := runInProcess(t, cfgFile, admin)
	if code := post(t, hook, "d-1", `{"id":"A-1","total":12.5}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	if code := post(t, hook, "d-2", `{"id":"A-2","total":-1}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	l := waitDeadLetters(t, admin, "connector=shop&reason=schema_violation", 1)
	dl := l.DeadLetters[0]
	if dl.Rule != "placed" || dl.Status != "open" || !strings.Contains(string(dl.Change), `"A-2"`) || dl.Error == "" {
		t.Fatalf("dead letter = %+v", dl)
	}
	var one map[string]any
	if code := getJSON(t, "http://"+admin+"/v1/deadletters/"+dl.ID, &one); code != 200 || one["id"] != dl.ID {
		t.Fatalf("show answered %d %v", code, one)
	}
	if code := getJSON(t, "http://"+admin+"/v1/deadletters/nope", nil); code != http.StatusNotFound {
		t.Errorf("show of an unknown id answered %d, want 404", code)
	}
	var res struct {
		Results []struct{ ID, Status, Error string } `json:"results"`
	}
	if code := adminDo(t, "POST", "http://"+admin+"/v1/deadletters/"+dl.ID+"/retry", "", &res); code != http.StatusUnprocessableEntity || len(res.Results) != 1 || !strings.Contains(res.Results[0].Error, "still fails") {
		t.Fatalf("retry under the same schema answered %d %+v, want 422 saying it still fails", code, res)
	}
	stop()

	relaxed := strings.Replace(strict, "total: {type: number, minimum: 0}", "total: {type: number}", 1)
	if err := os.WriteFile(cfgFile, []byte(relaxed), 0o644); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, cfgFile, admin)
	if code := adminDo(t, "POST", "http://"+admin+"/v1/deadletters/"+dl.ID+"/retry", "", &res); code != http.StatusOK || res.Results[0].Status != "retried" {
		t.Fatalf("retry after the fix answered %d %+v", code, res)
	}
	waitDeadLetters(t, admin, "", 0)
	l = waitDeadLetters(t, admin, "status=all", 1)
	if a := l.DeadLetters[0].Action; l.DeadLetters[0].Status != "retried" || a == nil || !strings.HasPrefix(a.By, "127.0.0.1:") || len(a.Events) != 1 {
		t.Fatalf("after the retry: %+v", l.DeadLetters[0])
	}
	code, out, errOut := runCLI(t, "events", "tail", "-c", cfgFile, "--no-follow")
	if code != 0 || !strings.Contains(out, `"subject":"A-2"`) || !strings.Contains(out, l.DeadLetters[0].Action.Events[0]) {
		t.Fatalf("the stream after the retry (exit %d, %s): %s", code, errOut, out)
	}

	if code := post(t, hook, "d-3", `{"id":"A-3","total":"much"}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	waitDeadLetters(t, admin, "", 1)
	if code := adminDo(t, "POST", "http://"+admin+"/v1/deadletters/drop", `{"reason": "schema_violation"}`, &res); code != http.StatusOK || len(res.Results) != 1 || res.Results[0].Status != "dropped" {
		t.Fatalf("bulk drop answered %d %+v", code, res)
	}
	l = waitDeadLetters(t, admin, "status=dropped", 1)
	if l.DeadLetters[0].Action.By == "" {
		t.Errorf("the drop does not say who: %+v", l.DeadLetters[0])
	}
	if code := adminDo(t, "POST", "http://"+admin+"/v1/deadletters/drop", `{"bogus": 1}`, nil); code != http.StatusBadRequest {
		t.Errorf("a body with an unknown field answered %d, want 400", code)
	}
}

// TestCheckpointReadAndSet reads a running connector's checkpoint and
// sets a disabled one's twice, each answer keeping the old checkpoint
// (TestConnectorPauseResumeAndCheckpoint sets a running one's).
func TestCheckpointReadAndSet(t *testing.T) {
	dir := t.TempDir()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(sidecarConfig, filepath.Join(dir, "state"), admin, httpAddr) + `  - name: parked
    type: webhook
    disabled: true
    config: {path: /hooks/parked}
    emit:
      - {name: placed, type: com.example.order.placed, subject: payload.id, data: {order_id: payload.id, total: payload.total}}
`
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, cfgFile, admin)
	if code := post(t, "http://"+httpAddr+"/hooks/shop", "d-1", `{"id":"A-1","total":1}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	type answer struct {
		Connector  string          `json:"connector"`
		Checkpoint json.RawMessage `json:"checkpoint"`
		Old        json.RawMessage `json:"old"`
		Error      string          `json:"error"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var a answer
		code := getJSON(t, "http://"+admin+"/v1/connectors/shop/checkpoint", &a)
		if code == 200 && string(a.Checkpoint) != "null" && strings.Contains(string(a.Checkpoint), `"position"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET checkpoint of shop: %d %+v", code, a)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var a answer
	if code := adminDo(t, "PUT", "http://"+admin+"/v1/connectors/parked/checkpoint", `{"position": {"v": 1, "d": "AQI="}}`, &a); code != 200 || string(a.Old) != "null" || !strings.Contains(string(a.Checkpoint), `"AQI="`) {
		t.Fatalf("first set answered %d %+v", code, a)
	}
	if code := adminDo(t, "PUT", "http://"+admin+"/v1/connectors/parked/checkpoint", `{"position": {"v": 1, "d": "AwQ="}}`, &a); code != 200 || !strings.Contains(string(a.Old), `"AQI="`) || !strings.Contains(string(a.Checkpoint), `"AwQ="`) {
		t.Fatalf("second set answered %d %+v, want the first as old", code, a)
	}
	if code := getJSON(t, "http://"+admin+"/v1/connectors/parked/checkpoint", &a); code != 200 || !strings.Contains(string(a.Checkpoint), `"AwQ="`) {
		t.Errorf("GET after the set: %d %+v", code, a)
	}
	for _, tt := range []struct {
		name, conn, body string
		want             int
	}{
		{name: "no position", conn: "parked", body: `{}`, want: 400},
		{name: "unknown field", conn: "parked", body: `{"position": {"v":1,"d":"AA=="}, "x": 1}`, want: 400},
		{name: "unknown connector", conn: "nope", body: `{"position": {"v":1,"d":"AA=="}}`, want: 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code := adminDo(t, "PUT", "http://"+admin+"/v1/connectors/"+tt.conn+"/checkpoint", tt.body, nil); code != tt.want {
				t.Errorf("answered %d, want %d", code, tt.want)
			}
		})
	}
}

// TestDeadLetterOfSinkRetried dead-letters an event the receiver refuses
// with a 400, then, once the receiver accepts, retries it from the admin
// API: the sink delivers that event again (same id), alone, and the dead
// letter is marked retried.
func TestDeadLetterOfSinkRetried(t *testing.T) {
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	rcv := newHookReceiver(t, func(_ *hook, n int, _ http.ResponseWriter) int {
		if n == 0 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	file := e.write("", httpSink("out", rcv.URL, "50ms", ""))
	runInProcess(t, file, e.admin)
	postEvents(t, e.hook, "A/1")
	l := waitDeadLetters(t, e.admin, "sink=out", 1)
	postEvents(t, e.hook, "B/1")
	waitHooks(t, rcv, 2)
	var res struct {
		Results []struct {
			ID, Status, Error string
			Events            []string
		} `json:"results"`
	}
	if code := adminDo(t, "POST", "http://"+e.admin+"/v1/deadletters/retry", `{"sink": "out"}`, &res); code != http.StatusOK || len(res.Results) != 1 || res.Results[0].ID != l.DeadLetters[0].ID {
		t.Fatalf("retry answered %d %+v", code, res)
	}
	hs := waitHooks(t, rcv, 3)
	time.Sleep(200 * time.Millisecond)
	if hs = rcv.hooks(); len(hs) != 3 || hs[2].ID != eventID("A/1") {
		t.Errorf("after the retry the receiver got %v, want a third request with %s", idsOf(hs), eventID("A/1"))
	}
	l = waitDeadLetters(t, e.admin, "status=retried", 1)
	if a := l.DeadLetters[0].Action; a == nil || a.Action != "retry" || len(a.Events) != 1 || a.Events[0] != eventID("A/1") {
		t.Errorf("the dead letter after the retry: %+v", l.DeadLetters[0])
	}
}
