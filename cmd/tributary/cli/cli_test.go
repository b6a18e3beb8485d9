package cli_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/cmd/tributary/cli"
	_ "github.com/tributary/tributary/connectors/all"
	// The custom-connector example's configuration needs its connector,
	// which its own sidecar build (examples/custom-connector/cmd) compiles
	// in; this test registers it the same way.
	"github.com/tributary/tributary/core"
	_ "github.com/tributary/tributary/examples/custom-connector/erp"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(core.DefaultRegistry, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateAcceptsEveryExample(t *testing.T) {
	files, err := filepath.Glob("../../../examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configurations found")
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			code, out, errOut := runCLI(t, "validate", "-c", f)
			if code != 0 {
				t.Fatalf("validate %s: exit %d\n%s%s", f, code, out, errOut)
			}
		})
	}
}

func TestValidateReportsEveryProblemWithItsLine(t *testing.T) {
	code, _, errOut := runCLI(t, "validate", "-c", "testdata/broken.yaml")
	if code != cli.ExitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, cli.ExitInvalid, errOut)
	}
	for _, want := range []string{
		"testdata/broken.yaml:5:", "stream.topics.mode",
		"testdata/broken.yaml:8:", "webhok",
		"testdata/broken.yaml:15:", "max_body_bytes",
		"testdata/broken.yaml:18:", "when",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate output lacks %q:\n%s", want, errOut)
		}
	}

	code, out, _ := runCLI(t, "validate", "--json", "-c", "testdata/broken.yaml")
	if code != cli.ExitInvalid {
		t.Fatalf("--json exit %d", code)
	}
	var rep struct {
		Valid    bool
		Problems []struct {
			File         string
			Line, Column int
			Field        string
			Message      string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if rep.Valid || len(rep.Problems) < 4 {
		t.Fatalf("--json report = %+v, want 4 or more problems", rep)
	}
	for _, p := range rep.Problems {
		if p.Line == 0 || p.Message == "" {
			t.Errorf("problem without a line or message: %+v", p)
		}
	}
}

func TestConnectorsListsEveryType(t *testing.T) {
	code, out, _ := runCLI(t, "connectors")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"webhook", "embedded", "kafka", "path", "brokers"} {
		if !strings.Contains(out, want) {
			t.Errorf("connectors output lacks %q", want)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

const sidecarConfig = `
version: 1
state_dir: %s
log: {level: warn}
admin: {address: %s}
http: {address: %s}
shutdown: {timeout: 10s}
stream: {type: embedded}
catalog:
  - type: com.example.order.placed
    version: "1"
    schema:
      type: object
      required: [order_id, total]
      properties:
        order_id: {type: string}
        total: {type: number, minimum: 0}
connectors:
  - name: shop
    type: webhook
    config:
      path: /hooks/shop
      verify: {preset: hmac, header: X-Signature, prefix: "sha256=", secrets: [s3cret]}
      dedup: {header: X-Delivery-Id}
    emit:
      - name: placed
        type: com.example.order.placed
        subject: payload.id
        partition_key: payload.id
        data: {order_id: payload.id, total: payload.total}
`

// post posts a delivery signed with sidecarConfig's secret and returns the
// status code; postRaw returns the whole answer.
func post(t *testing.T, url, id, body string) int {
	t.Helper()
	resp, _ := postRaw(t, url, id, body)
	return resp.StatusCode
}

// sign is the HMAC-SHA256 of body under sidecarConfig's secret, in hex.
func sign(body string) string {
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TestSidecarEndToEnd runs the sidecar in process: a signed delivery goes in
// over HTTP, a schema-violating one goes to the dead-letter topic, the admin
// API reports both, and `events tail` prints the event.
func TestSidecarEndToEnd(t *testing.T) {
	dir := t.TempDir()
	admin, httpAddr := freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "tributary.yaml")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, sidecarConfig, filepath.Join(dir, "state"), admin, httpAddr), 0o644); err != nil {
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

	deadline := time.Now().Add(20 * time.Second)
	for {
		var ready map[string]any
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar never became ready: %v %v", err, ready)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hook := "http://" + httpAddr + "/hooks/shop"
	if code := post(t, hook, "d-1", `{"id":"A-1","total":12.5}`); code != 200 {
		t.Fatalf("delivery answered %d", code)
	}
	if code := post(t, hook, "d-2", `{"id":"A-2","total":-1}`); code != 200 {
		t.Fatalf("second delivery answered %d", code)
	}

	var st struct {
		Connectors []struct {
			Name          string
			State         string
			EventsEmitted uint64 `json:"events_emitted"`
			DeadLettered  uint64 `json:"dead_lettered"`
		}
	}
	for {
		getJSON(t, "http://"+admin+"/v1/connectors", &st)
		if len(st.Connectors) == 1 && st.Connectors[0].EventsEmitted == 1 && st.Connectors[0].DeadLettered == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %+v, want 1 emitted and 1 dead-lettered", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tributary_events_emitted_total{connector="shop",type="com.example.order.placed"} 1`,
		`tributary_dead_lettered_total{connector="shop",reason="schema_violation"} 1`,
		`tributary_publish_latency_seconds_bucket`,
		`tributary_changes_read_total{connector="shop"} 2`,
	} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}

	code, out, errOut := runCLI(t, "events", "tail", "-c", cfgFile, "--from-beginning", "--limit", "1")
	if code != 0 {
		t.Fatalf("tail exit %d: %s", code, errOut)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &ev); err != nil {
		t.Fatalf("tail printed %q: %v", out, err)
	}
	if ev["type"] != "com.example.order.placed" || ev["specversion"] != "1.0" || ev["subject"] != "A-1" || ev["partitionkey"] != "A-1" {
		t.Fatalf("tailed event = %v", ev)
	}
	if data, _ := ev["data"].(map[string]any); data["order_id"] != "A-1" {
		t.Fatalf("tailed data = %v", ev["data"])
	}

	code, out, errOut = runCLI(t, "events", "tail", "-c", cfgFile, "--dead-letter", "--from-beginning", "--limit", "1")
	if code != 0 {
		t.Fatalf("dead-letter tail exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"reason":"schema_violation"`) || !strings.Contains(out, `A-2`) {
		t.Fatalf("dead-letter record = %s", out)
	}
}

// TestUnreachableKafkaIsNotFatal starts the sidecar with a Kafka stream that
// does not answer: it must keep running, retry, and report not ready with
// the reason, then shut down cleanly.
func TestUnreachableKafkaIsNotFatal(t *testing.T) {
	dir := t.TempDir()
	admin := freeAddr(t)
	dead := freeAddr(t) // nothing listens here
	cfgFile := filepath.Join(dir, "tributary.yaml")
	cfg := fmt.Sprintf(`
state_dir: %s
admin: {address: %s}
shutdown: {timeout: 5s}
stream:
  type: kafka
  config: {brokers: [%q]}
connectors:
  - name: inbox
    type: webhook
    config: {path: /hooks/in}
    emit:
      - {name: received, type: com.example.thing.received, data: payload}
`, filepath.Join(dir, "state"), admin, dead)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := cli.Build(core.DefaultRegistry, cfgFile, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()

	deadline := time.Now().Add(20 * time.Second)
	var ready struct {
		Ready    bool              `json:"ready"`
		NotReady map[string]string `json:"not_ready"`
	}
	for {
		code := 0
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			code = resp.StatusCode
			json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
		}
		if code == http.StatusServiceUnavailable && strings.Contains(ready.NotReady["stream"], "retrying") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz = %d %+v, want 503 with the stream retrying", code, ready)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("sidecar exited while the broker was down: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not stop within 10s of cancellation")
	}
}
