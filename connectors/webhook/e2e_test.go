package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/connectors/embedded"
	connector "github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

const demoSecret = "demo-secret"

// sampleEntry returns the named connector of sample.yaml.
func sampleEntry(t *testing.T, name string) (map[string]any, []core.Rule) {
	t.Helper()
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connectors []struct {
			Name   string         `yaml:"name"`
			Config map[string]any `yaml:"config"`
			Emit   []core.Rule    `yaml:"emit"`
		} `yaml:"connectors"`
	}
	if err := yaml.Unmarshal([]byte(interpolate(string(data))), &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Connectors {
		if c.Name == name {
			return c.Config, c.Emit
		}
	}
	t.Fatalf("sample.yaml has no connector %q", name)
	return nil, nil
}

// sidecar is the runtime with the demo webhook connector on the embedded
// stream, over a real loopback listener whose address survives restarts.
type sidecar struct {
	t      *testing.T
	dir    string
	router *runtime.Router
	cancel context.CancelFunc
	done   chan error
}

// embeddedStream returns the embedded stream in dir, configured.
func embeddedStream(t *testing.T, dir string) *embedded.Stream {
	t.Helper()
	st := embedded.New()
	if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(dir, "stream.db")})); err != nil {
		t.Fatal(err)
	}
	return st
}

func startSidecar(t *testing.T, dir string, router *runtime.Router, st core.Stream) *sidecar {
	t.Helper()
	return startSidecarOn(t, dir, router, st, "events", nil)
}

// startSidecarOn is startSidecar with every event on topic and the
// connector's configuration changed by edit, when not nil.
func startSidecarOn(t *testing.T, dir string, router *runtime.Router, st core.Stream, topic string, edit func(map[string]any)) *sidecar {
	t.Helper()
	values, emit := sampleEntry(t, "demo_orders")
	if edit != nil {
		edit(values)
	}
	cat, err := catalog.New([]core.EventType{{
		Type: "com.example.order.received", Version: "1",
		Schema: map[string]any{"type": "object", "required": []any{"order_id"}},
	}}, dir)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	set, err := rules.Compile("demo_orders", emit, cat)
	if err != nil {
		t.Fatalf("compile the sample's rules: %v", err)
	}
	src := connector.New()
	if err := src.Configure(core.NewConfig("demo_orders", values)); err != nil {
		t.Fatal(err)
	}
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: topic},
		Connectors:      []runtime.Connector{{Name: "demo_orders", Type: connector.Type, Source: src, Mapper: runtime.Rules(set), Retry: runtime.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond}}},
		StateDir:        dir,
		HTTP:            router,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{t: t, dir: dir, router: router, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- rt.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for rt.Status().Connectors[0].State != runtime.StateRunning {
		if time.Now().After(deadline) {
			t.Fatalf("connector not running: %+v", rt.Status().Connectors[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func (s *sidecar) stop() {
	s.t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("runtime shutdown: %v", err)
	}
}

func postDemo(t *testing.T, url, id string, n int) int {
	t.Helper()
	body := fmt.Sprintf(`{"id":"o-%d","customer":"ada","total":"%d.50"}`, n, n)
	m := hmac.New(sha256.New, []byte(demoSecret))
	m.Write([]byte(body))
	req, _ := http.NewRequest(http.MethodPost, url+"/hooks/demo", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-Request-Id", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", id, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// readEvents reads n events from the stream's beginning and fails on more
// arriving shortly after.
func readEvents(t *testing.T, st core.Stream, n int) []*core.Event {
	t.Helper()
	sub, err := st.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	var out []*core.Event
	for len(out) < n {
		select {
		case m := <-msgs:
			e, err := core.EventFromMessage(m)
			if err != nil {
				t.Fatal(err)
			}
			m.Ack()
			out = append(out, e)
		case <-ctx.Done():
			t.Fatalf("read %d of %d events", len(out), n)
		}
	}
	return out
}

func TestEndToEndEmbedded(t *testing.T) {
	dir := t.TempDir()
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()

	st := embeddedStream(t, dir)
	sc := startSidecar(t, dir, router, st)
	accepted := map[string]int{}
	for i := range 30 {
		id := fmt.Sprint("d-", i)
		if code := postDemo(t, srv.URL, id, i); code != 200 {
			t.Fatalf("delivery %s = %d", id, code)
		}
		accepted[id] = i
	}
	// A sender's retries are answered 200 and emit nothing.
	for i := range 5 {
		if code := postDemo(t, srv.URL, fmt.Sprint("d-", i), i); code != 200 {
			t.Fatalf("retry = %d", code)
		}
	}
	// Unsigned deliveries are refused and emit nothing.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/demo", strings.NewReader(`{"id":"forged"}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("unsigned delivery = %v %v, want 401", resp, err)
	}
	readEvents(t, st, 30)
	sc.stop()

	// While the sidecar is down the path answers 404: nothing is accepted.
	if code := postDemo(t, srv.URL, "while-down", 99); code == 200 {
		t.Fatalf("delivery while stopped = %d, want a refusal", code)
	}

	st = embeddedStream(t, dir)
	sc = startSidecar(t, dir, router, st)
	defer sc.stop()
	for i := 30; i < 40; i++ {
		id := fmt.Sprint("d-", i)
		if code := postDemo(t, srv.URL, id, i); code != 200 {
			t.Fatalf("delivery %s = %d", id, code)
		}
		accepted[id] = i
	}
	events := readEvents(t, st, 40)
	byID := map[string]int{}
	for _, e := range events {
		byID[e.ID]++
		if e.Type != "com.example.order.received" {
			t.Errorf("event type = %q", e.Type)
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil || !strings.HasPrefix(fmt.Sprint(data["order_id"]), "o-") {
			t.Errorf("event data = %s (%v)", e.Data, err)
		}
		if e.PartitionKey == "" || e.Subject != data["order_id"] {
			t.Errorf("partition key %q, subject %q, want the order id", e.PartitionKey, e.Subject)
		}
	}
	// Every accepted delivery arrived exactly once, under the id derived
	// from its delivery id.
	for id, n := range accepted {
		want := core.EventID("demo_orders", core.Position{Version: 1, Data: []byte(id)}, "order_received")
		if byID[want] != 1 {
			t.Errorf("delivery %s (order o-%d): %d events with id %s, want 1", id, n, byID[want], want)
		}
	}
	if len(byID) != len(accepted) {
		t.Errorf("%d distinct events, want %d", len(byID), len(accepted))
	}
}

// TestEndToEndAckStream checks ack: stream through the runtime: once a
// delivery is answered 200, its event is already on the stream.
func TestEndToEndAckStream(t *testing.T) {
	dir := t.TempDir()
	router := runtime.NewRouter()
	srv := httptest.NewServer(router)
	defer srv.Close()
	st := embeddedStream(t, dir)
	sc := startSidecarOn(t, dir, router, st, "events", func(v map[string]any) { v["ack"] = "stream" })
	defer sc.stop()
	for i := range 5 {
		if code := postDemo(t, srv.URL, fmt.Sprint("s-", i), i); code != 200 {
			t.Fatalf("delivery %d = %d", i, code)
		}
		// No waiting: the event must be there already.
		sub, err := st.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msgs, err := sub.Subscribe(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		want := core.EventID("demo_orders", core.Position{Version: 1, Data: []byte(fmt.Sprint("s-", i))}, "order_received")
		found := false
		for n := 0; n <= i && !found; n++ {
			select {
			case m := <-msgs:
				m.Ack()
				found = m.UUID == want
			case <-ctx.Done():
				n = i + 1
			}
		}
		cancel()
		sub.Close()
		if !found {
			t.Fatalf("delivery %d answered 200 but its event %s is not on the stream", i, want)
		}
	}
}
