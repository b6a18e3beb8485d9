package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/adapters/webhook/webhooktest"
	connector "github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
)

var refRe = regexp.MustCompile(`\$\{([^}:]+)(?::-([^}]*))?\}`)

// interpolate stands in for the config loader: ${VAR:-default} takes its
// default, ${file:...} a fixed value.
func interpolate(s string) string {
	return refRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := refRe.FindStringSubmatch(m)
		if strings.HasPrefix(sub[1], "file") {
			return "secret-from-file"
		}
		return sub[2]
	})
}

func TestSampleConfigures(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Connectors []struct {
			Name   string         `yaml:"name"`
			Type   string         `yaml:"type"`
			Config map[string]any `yaml:"config"`
			Emit   []core.Rule    `yaml:"emit"`
		} `yaml:"connectors"`
	}
	if err := yaml.Unmarshal([]byte(interpolate(string(data))), &doc); err != nil {
		t.Fatalf("decode sample.yaml: %v", err)
	}
	if len(doc.Connectors) == 0 {
		t.Fatal("sample.yaml has no connectors")
	}
	for _, c := range doc.Connectors {
		t.Run(c.Name, func(t *testing.T) {
			if c.Type != connector.Type {
				t.Fatalf("type = %q, want %q", c.Type, connector.Type)
			}
			if len(c.Emit) == 0 {
				t.Errorf("no emit rules")
			}
			if err := connector.New().Configure(core.NewConfig(c.Name, c.Config)); err != nil {
				t.Fatalf("Configure() = %v", err)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	spec, ok := core.DefaultRegistry.Source(connector.Type)
	if !ok {
		t.Fatal("webhook is not registered")
	}
	if _, ok := spec.New().(*connector.Source); !ok {
		t.Errorf("New() returns %T", spec.New())
	}
	core.NewRegistry().RegisterSource(connector.Spec())
}

func validValues() map[string]any {
	return map[string]any{
		"path": "/hooks/orders",
		"verify": map[string]any{
			"preset":  "hmac",
			"secrets": []any{"topsecret-value"},
			"header":  "X-Signature",
		},
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(v map[string]any)
		wantPaths []string
	}{
		{name: "valid", edit: func(map[string]any) {}},
		{name: "no verify", edit: func(v map[string]any) { delete(v, "verify") }},
		{name: "empty objects", edit: func(v map[string]any) {
			v["verify"], v["dedup"], v["handshake"] = map[string]any{}, map[string]any{}, map[string]any{}
		}},
		{name: "missing path", edit: func(v map[string]any) { delete(v, "path") }, wantPaths: []string{"path"}},
		{name: "relative path", edit: func(v map[string]any) { v["path"] = "hooks" }, wantPaths: []string{"path"}},
		{name: "bad wildcard", edit: func(v map[string]any) { v["path"] = "/hooks/{a" }, wantPaths: []string{"path"}},
		{name: "lowercase method", edit: func(v map[string]any) { v["methods"] = []any{"post"} }, wantPaths: []string{"methods[0]"}},
		{name: "bad content type", edit: func(v map[string]any) { v["content_types"] = []any{"json"} }, wantPaths: []string{"content_types[0]"}},
		{name: "body limit", edit: func(v map[string]any) { v["max_body_bytes"] = -1 }, wantPaths: []string{"max_body_bytes"}},
		{name: "unknown preset", edit: func(v map[string]any) { v["verify"].(map[string]any)["preset"] = "gitlab" }, wantPaths: []string{"verify.preset"}},
		{name: "no secrets", edit: func(v map[string]any) { delete(v["verify"].(map[string]any), "secrets") }, wantPaths: []string{"verify.secrets"}},
		{name: "empty secret", edit: func(v map[string]any) { v["verify"].(map[string]any)["secrets"] = []any{""} }, wantPaths: []string{"verify.secrets[0]"}},
		{name: "hmac without header", edit: func(v map[string]any) { delete(v["verify"].(map[string]any), "header") }, wantPaths: []string{"verify.header"}},
		{name: "bad algorithm", edit: func(v map[string]any) { v["verify"].(map[string]any)["algorithm"] = "md5" }, wantPaths: []string{"verify.algorithm"}},
		{name: "basic without user", edit: func(v map[string]any) { v["verify"].(map[string]any)["preset"] = "basic" }, wantPaths: []string{"verify.username"}},
		{name: "standard webhooks bad secret", edit: func(v map[string]any) { v["verify"].(map[string]any)["preset"] = "standard_webhooks" }, wantPaths: []string{"verify.secrets[0]"}},
		{name: "short window", edit: func(v map[string]any) { v["dedup"] = map[string]any{"window": "10ms"} }, wantPaths: []string{"dedup.window"}},
		{name: "tiny dedup memory", edit: func(v map[string]any) { v["dedup"] = map[string]any{"memory_ids": 10} }, wantPaths: []string{"dedup.memory_ids"}},
		{name: "header and field", edit: func(v map[string]any) { v["dedup"] = map[string]any{"header": "X-Id", "field": "id"} }, wantPaths: []string{"dedup"}},
		{name: "echo without source", edit: func(v map[string]any) { v["handshake"] = map[string]any{"type": "echo"} }, wantPaths: []string{"handshake"}},
		{name: "unknown handshake", edit: func(v map[string]any) { v["handshake"] = map[string]any{"type": "ping"} }, wantPaths: []string{"handshake.type"}},
		{name: "several problems at once", edit: func(v map[string]any) {
			delete(v, "path")
			v["max_pending"] = -5
			v["verify"].(map[string]any)["preset"] = "bearer"
			v["verify"].(map[string]any)["secrets"] = []any{}
		}, wantPaths: []string{"path", "max_pending", "verify.secrets"}},
		{name: "unknown ack mode", edit: func(v map[string]any) { v["ack"] = "kafka" }, wantPaths: []string{"ack"}},
		{name: "stream ack", edit: func(v map[string]any) { v["ack"] = "stream"; v["ack_timeout"] = "30s" }},
		{name: "unknown key", edit: func(v map[string]any) { v["secret"] = "x" }, wantPaths: []string{"secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := validValues()
			tt.edit(v)
			err := connector.New().Configure(core.NewConfig("orders", v))
			if len(tt.wantPaths) == 0 {
				if err != nil {
					t.Fatalf("Configure() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Configure() = nil, want errors at %v", tt.wantPaths)
			}
			if strings.Contains(err.Error(), "topsecret-value") {
				t.Errorf("error quotes a secret: %v", err)
			}
			var got []string
			for _, e := range core.Flatten(err) {
				var fe *core.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %v is not a *core.FieldError", e)
					continue
				}
				got = append(got, fe.Path)
			}
			for _, want := range tt.wantPaths {
				found := false
				for _, g := range got {
					found = found || g == want
				}
				if !found {
					t.Errorf("error paths = %q, want %q among them (error: %v)", got, want, err)
				}
			}
		})
	}
}

// TestDeclaredDefaultsAreTheAdapters: the defaults the connector declares
// are those the adapter gives a zero field, so that a Go program using the
// adapter and a YAML configuration that sets nothing behave alike.
func TestDeclaredDefaultsAreTheAdapters(t *testing.T) {
	declared := map[string]any{}
	for _, f := range core.FieldsOf[connector.Config]() {
		declared[f.Name] = f.Default
		for _, sub := range f.Fields {
			declared[f.Name+"."+sub.Name] = sub.Default
		}
	}
	tests := []struct {
		name string
		want any
	}{
		{name: "methods", want: []string{http.MethodPost}},
		{name: "max_body_bytes", want: webhook.DefaultMaxBodyBytes},
		{name: "content_types", want: webhook.DefaultContentTypes()},
		{name: "dedup.window", want: webhook.DefaultDedupWindow},
		{name: "dedup.memory_ids", want: webhook.DefaultDedupMemoryIDs},
		{name: "max_pending", want: webhook.DefaultMaxPending},
		{name: "max_pending_bytes", want: webhook.DefaultMaxPendingBytes},
		{name: "retry_after", want: webhook.DefaultRetryAfter},
		{name: "ack", want: string(webhook.AckInbox)},
		{name: "ack_timeout", want: webhook.DefaultAckTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := declared[tt.name]
			if !ok {
				t.Fatalf("%s is not declared", tt.name)
			}
			if want, isDuration := tt.want.(time.Duration); isDuration {
				d, err := time.ParseDuration(fmt.Sprint(got))
				if err != nil || d != want {
					t.Fatalf("declared default %v, adapter's %s", got, want)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("declared default %#v, adapter's %#v", got, tt.want)
			}
		})
	}
}

// server runs a configured webhook connector over loopback HTTP.
type server struct {
	t   *testing.T
	src *connector.Source
	srv *httptest.Server
}

func serve(t *testing.T, values map[string]any, now func() time.Time) *server {
	t.Helper()
	src := connector.New()
	if now != nil {
		src = connector.NewWithClock(now)
	}
	if err := src.Configure(core.NewConfig("hooks", values)); err != nil {
		t.Fatalf("Configure() = %v", err)
	}
	router := webhooktest.NewRouter()
	s := &server{t: t, src: src, srv: httptest.NewServer(router)}
	t.Cleanup(s.srv.Close)
	if err := src.Open(context.Background(), core.Env{Name: "hooks", StateDir: t.TempDir(), HTTP: router}, core.Position{}); err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	return s
}

func (s *server) do(method, path, contentType, body string, hdr map[string]string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *server) read(n int) []core.Change {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []core.Change
	for len(out) < n {
		chs, err := s.src.Read(ctx)
		if err != nil {
			s.t.Fatalf("Read() after %d of %d: %v", len(out), n, err)
		}
		out = append(out, chs...)
	}
	return out
}

func (s *server) readNone() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if chs, err := s.src.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		s.t.Fatalf("Read() = %d changes, %v; want none", len(chs), err)
	}
}

func TestGitHubDeliveries(t *testing.T) {
	s := serve(t, map[string]any{"path": "/hooks/github", "verify": map[string]any{"preset": "github", "secrets": []any{githubSecret}}}, nil)
	hdr := map[string]string{"X-Hub-Signature-256": githubSig, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", "X-GitHub-Event": "ping"}
	body := `"` + githubBody + `"` // a JSON string is a valid JSON body
	// GitHub signs the exact bytes; re-sign the JSON-quoted body.
	m := hmac.New(sha256.New, []byte(githubSecret))
	m.Write([]byte(body))
	hdr["X-Hub-Signature-256"] = "sha256=" + hex.EncodeToString(m.Sum(nil))

	if code, resp := s.do("POST", "/hooks/github", "application/json", body, hdr); code != 200 || !strings.Contains(resp, "accepted") {
		t.Fatalf("first delivery = %d %s", code, resp)
	}
	if code, resp := s.do("POST", "/hooks/github", "application/json", body, hdr); code != 200 || !strings.Contains(resp, "duplicate") {
		t.Fatalf("redelivery = %d %s, want 200 duplicate", code, resp)
	}
	bad := map[string]string{"X-Hub-Signature-256": githubSig, "X-GitHub-Delivery": "other"}
	if code, _ := s.do("POST", "/hooks/github", "application/json", body, bad); code != 401 {
		t.Fatalf("bad signature = %d, want 401", code)
	}
	ch := s.read(1)[0]
	s.readNone()
	if got := string(ch.Position.Data); got != "72d3162e-cc78-11e3-81ab-4c9367dc0958" {
		t.Errorf("delivery id = %q, want the X-GitHub-Delivery header", got)
	}
	if ch.Payload != githubBody {
		t.Errorf("payload = %#v", ch.Payload)
	}
	if ch.Meta["headers"].(map[string]any)["X-Github-Event"] != "ping" {
		t.Errorf("meta.headers = %v", ch.Meta["headers"])
	}
}

func TestStripeDeliveryIDFromBody(t *testing.T) {
	s := serve(t, map[string]any{"path": "/hooks/stripe", "verify": map[string]any{"preset": "stripe", "secrets": []any{stripeSecret}}}, at(stripeTS, 0))
	// The id is read from the whole payload, which then serves the rules
	// too: the body is parsed once, not pruned to their paths and again.
	s.src.SetPayloadPaths([]core.PayloadPath{{Fields: []string{"type"}}}, false)
	hdr := map[string]string{"Stripe-Signature": "t=" + stripeTS + ",v1=" + stripeV1}
	if code, resp := s.do("POST", "/hooks/stripe", "application/json", stripeBody, hdr); code != 200 {
		t.Fatalf("delivery = %d %s", code, resp)
	}
	ch := s.read(1)[0]
	if got := string(ch.Position.Data); got != "evt_1" {
		t.Errorf("delivery id = %q, want the event id evt_1", got)
	}
	if ch.PayloadPruned {
		t.Errorf("payload pruned to the rules' paths although the delivery id hook built it whole")
	}
}

func TestSlackHandshake(t *testing.T) {
	now := at("1700000000", 0)
	s := serve(t, map[string]any{"path": "/hooks/slack", "verify": map[string]any{"preset": "slack", "secrets": []any{slackSecret}}}, now)
	sign := func(body string) map[string]string {
		m := hmac.New(sha256.New, []byte(slackSecret))
		m.Write([]byte("v0:1700000000:" + body))
		return map[string]string{"X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=" + hex.EncodeToString(m.Sum(nil))}
	}
	challenge := `{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	code, resp := s.do("POST", "/hooks/slack", "application/json", challenge, sign(challenge))
	if code != 200 || resp != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("url_verification = %d %q, want 200 and the challenge", code, resp)
	}
	// An unsigned challenge is refused.
	if code, _ := s.do("POST", "/hooks/slack", "application/json", challenge, nil); code != 401 {
		t.Fatalf("unsigned url_verification = %d, want 401", code)
	}
	event := `{"type":"event_callback","event_id":"Ev123","event":{"type":"message"}}`
	if code, resp := s.do("POST", "/hooks/slack", "application/json", event, sign(event)); code != 200 || !strings.Contains(resp, "Ev123") {
		t.Fatalf("event = %d %s", code, resp)
	}
	chs := s.read(1)
	s.readNone()
	if string(chs[0].Position.Data) != "Ev123" {
		t.Errorf("delivery id = %q, want Ev123", chs[0].Position.Data)
	}
}

func TestEchoHandshake(t *testing.T) {
	s := serve(t, map[string]any{"path": "/hooks/erp", "handshake": map[string]any{"type": "echo", "query_param": "challenge", "json_field": "validationToken"}}, nil)
	if code, resp := s.do("GET", "/hooks/erp?challenge=abc123", "", "", nil); code != 200 || resp != "abc123" {
		t.Fatalf("GET challenge = %d %q", code, resp)
	}
	code, resp := s.do("POST", "/hooks/erp", "application/json", `{"validationToken":"tok-9"}`, nil)
	var got map[string]string
	_ = json.Unmarshal([]byte(resp), &got)
	if code != 200 || got["validationToken"] != "tok-9" {
		t.Fatalf("JSON challenge = %d %q", code, resp)
	}
	if code, _ := s.do("GET", "/hooks/erp", "", "", nil); code != 405 {
		t.Fatalf("GET without challenge = %d, want 405", code)
	}
	s.readNone()
}

func TestFormAndXMLDeliveries(t *testing.T) {
	s := serve(t, map[string]any{"path": "/hooks/legacy", "dedup": map[string]any{"field": "order.@id"}}, nil)
	if code, resp := s.do("POST", "/hooks/legacy", "application/xml", `<order id="A-17"><line sku="x"/><line sku="y"/></order>`, nil); code != 200 {
		t.Fatalf("xml = %d %s", code, resp)
	}
	if code, resp := s.do("POST", "/hooks/legacy", "application/x-www-form-urlencoded", `order_id=9&status=shipped`, nil); code != 200 {
		t.Fatalf("form = %d %s", code, resp)
	}
	chs := s.read(2)
	if string(chs[0].Position.Data) != "A-17" {
		t.Errorf("xml delivery id = %q, want A-17", chs[0].Position.Data)
	}
	lines := chs[0].Payload.(map[string]any)["order"].(map[string]any)["line"].([]any)
	if len(lines) != 2 {
		t.Errorf("xml lines = %v", lines)
	}
	if p := chs[1].Payload.(map[string]any); p["status"] != "shipped" || !strings.HasPrefix(string(chs[1].Position.Data), "sha256:") {
		t.Errorf("form change = %v %s", p, chs[1].Position)
	}
}

func TestUnconfiguredSource(t *testing.T) {
	s := connector.New()
	if err := s.Open(context.Background(), core.Env{}, core.Position{}); !errors.Is(err, core.ErrFatal) {
		t.Errorf("Open() before Configure = %v, want fatal", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close() = %v", err)
	}
}
