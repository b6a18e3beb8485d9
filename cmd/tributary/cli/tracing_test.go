package cli_test

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tributary/tributary/cmd/tributary/cli"
	"github.com/tributary/tributary/core"
)

// otlpCollector is an in-process OTLP/HTTP trace receiver: it keeps every
// span exported to it.
type otlpCollector struct {
	*httptest.Server
	mu    sync.Mutex
	spans []collected
}

type collected struct {
	name, trace, id, parent string
	attrs                   map[string]string
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	t.Helper()
	c := &otlpCollector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := collected{name: s.Name, trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
					for _, a := range s.Attributes {
						sp.attrs[a.Key] = a.Value.GetStringValue()
					}
					c.spans = append(c.spans, sp)
				}
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *otlpCollector) find(pred func(collected) bool) (collected, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if pred(s) {
			return s, true
		}
	}
	return collected{}, false
}

// TestTracingWebhookToSink runs the sidecar with tracing on (tracing:
// exporter otlp, to an in-process OTLP receiver) and posts a webhook
// delivery that carries a client's traceparent: the listener's server
// span is the client span's child, the change's span is the server span's
// child and has read, map, validate, publish and ack children, and the
// event reaches the HTTP sink's target with the publish span's
// traceparent and the client's tracestate, for a consumer to continue the
// trace.
func TestTracingWebhookToSink(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	col := newOTLPCollector(t)
	var (
		mu     sync.Mutex
		parent string
		state  string
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		parent, state = r.Header.Get("Traceparent"), r.Header.Get("Tracestate")
		mu.Unlock()
	}))
	defer target.Close()
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	file := e.write("", httpSink("out", target.URL, "50ms", ""))
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "tracing: {exporter: otlp, endpoint: %q, service_name: tributary-test}\n", col.URL)
	f.Close()
	runInProcess(t, file, e.admin)

	const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	body := `{"id":"T","total":1}`
	req, _ := http.NewRequest("POST", e.hook, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Delivery-Id", "d-T-1")
	req.Header.Set("X-Signature", "sha256="+sign(body))
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	const clientState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	req.Header.Set("Tracestate", clientState)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("delivery answered %d", resp.StatusCode)
	}

	var server, change collected
	deadline := time.Now().Add(20 * time.Second)
	children := map[string]collected{}
	for {
		var ok1, ok2 bool
		server, ok1 = col.find(func(s collected) bool { return s.name == "POST /hooks/shop" && s.trace == clientTrace })
		change, ok2 = col.find(func(s collected) bool { return s.name == "tributary.change" && s.trace == clientTrace })
		if ok1 && ok2 {
			for _, n := range []string{"tributary.read", "tributary.map", "tributary.publish", "tributary.ack"} {
				if c, ok := col.find(func(s collected) bool { return s.name == n && s.parent == change.id }); ok {
					children[n] = c
				}
			}
			if len(children) == 4 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans not exported within 20s: server %v, change %v, children %v", ok1, ok2, children)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if server.parent != clientSpan {
		t.Errorf("the server span's parent is %q, want the client's span %s", server.parent, clientSpan)
	}
	if change.parent != server.id {
		t.Errorf("the change span's parent is %q, want the server span %s", change.parent, server.id)
	}
	if change.attrs["tributary.connector"] != "shop" {
		t.Errorf("the change span's attributes: %v", change.attrs)
	}
	if _, ok := col.find(func(s collected) bool {
		return s.name == "tributary.validate" && s.parent == children["tributary.map"].id
	}); !ok {
		t.Errorf("no validate span under the map span")
	}
	want := "00-" + clientTrace + "-" + children["tributary.publish"].id + "-01"
	deadline = time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got, gotState := parent, state
		mu.Unlock()
		if got == want && gotState == clientState {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink's target got traceparent %q and tracestate %q, want the publish span's %q and the client's %q", got, gotState, want, clientState)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTracingSettingsRefused: OTEL_* values tributary cannot honour
// refuse to build the sidecar, naming the variable; others build.
func TestTracingSettingsRefused(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		section string
		wantErr string
	}{
		{name: "off", env: map[string]string{}},
		{name: "on by the endpoint variable", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{name: "grpc by config", section: "tracing: {exporter: otlp, protocol: grpc, endpoint: \"http://127.0.0.1:4317\"}\n"},
		{name: "disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "zipkin"}},
		{name: "an exporter tributary lacks", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "a protocol OTLP lacks", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			e := newSinkE2E(t, "stream: {type: embedded}", "")
			file := e.write("", "")
			if tt.section != "" {
				b, _ := os.ReadFile(file)
				if err := os.WriteFile(file, append(b, tt.section...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := cli.Build(core.DefaultRegistry, file, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Build: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Build: %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}
