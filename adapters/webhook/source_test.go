package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/adapters/webhook/webhooktest"
	"github.com/tributary/tributary/core"
)

// harness serves one source over a real loopback HTTP server.
type harness struct {
	t      *testing.T
	cfg    webhook.Config
	dir    string
	router *webhooktest.Router
	srv    *httptest.Server
	reg    *prometheus.Registry
	src    *webhook.Source
}

func newHarness(t *testing.T, cfg webhook.Config) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, dir: t.TempDir(), router: webhooktest.NewRouter(), reg: prometheus.NewRegistry()}
	h.srv = httptest.NewServer(h.router)
	t.Cleanup(h.srv.Close)
	h.open(core.Position{})
	t.Cleanup(func() { _ = h.src.Close(context.Background()) })
	return h
}

func (h *harness) env() core.Env {
	return core.Env{Name: "orders", StateDir: h.dir, HTTP: h.router, Metrics: h.reg}
}

func (h *harness) open(from core.Position) {
	h.t.Helper()
	src, err := webhook.NewSource(h.cfg)
	if err != nil {
		h.t.Fatalf("NewSource() error = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Open(ctx, h.env(), from); err != nil {
		h.t.Fatalf("Open() error = %v", err)
	}
	h.src = src
}

// restart closes the source and opens a new one on the same state dir.
func (h *harness) restart(from core.Position) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.src.Close(ctx); err != nil {
		h.t.Fatalf("Close() error = %v", err)
	}
	if err := h.src.Close(ctx); err != nil {
		h.t.Fatalf("second Close() error = %v", err)
	}
	h.open(from)
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (h *harness) do(method, path, contentType, body string, hdr map[string]string) answer {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (h *harness) post(body string, hdr map[string]string) answer {
	h.t.Helper()
	return h.do(http.MethodPost, "/hooks/orders", "application/json", body, hdr)
}

// readN reads until n changes arrived.
func (h *harness) readN(n int) []core.Change {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []core.Change
	for len(out) < n {
		chs, err := h.src.Read(ctx)
		if err != nil {
			h.t.Fatalf("Read() after %d of %d changes: %v", len(out), n, err)
		}
		out = append(out, chs...)
	}
	if len(out) != n {
		h.t.Fatalf("Read() returned %d changes, want %d", len(out), n)
	}
	return out
}

// readNone checks that no change is ready.
func (h *harness) readNone() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	chs, err := h.src.Read(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		h.t.Fatalf("Read() = %d changes, %v; want none", len(chs), err)
	}
}

func (h *harness) pending() int64 {
	return h.src.Status()["inbox_pending"].(int64)
}

func ids(chs []core.Change) []string {
	var out []string
	for _, c := range chs {
		out = append(out, string(c.Position.Data))
	}
	return out
}

func headerID(r *webhook.Request) string { return r.HTTP.Header.Get("X-Delivery") }

func TestDeliveryBecomesChange(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/{tenant}/orders", DeliveryID: headerID})
	a := h.do(http.MethodPost, "/hooks/acme/orders?src=erp&x=1&x=2", "application/json; charset=utf-8",
		`{"id":"o-1","total":12.5}`, map[string]string{"X-Delivery": "d-1", "Authorization": "Bearer hidden"})
	if a.status != http.StatusOK || a.body["status"] != "accepted" || a.body["delivery_id"] != "d-1" {
		t.Fatalf("answer = %d %s, want 200 accepted d-1", a.status, a.raw)
	}
	ch := h.readN(1)[0]
	if ch.Op != core.OpMessage {
		t.Errorf("Op = %q, want message", ch.Op)
	}
	want := map[string]any{"id": "o-1", "total": json.Number("12.5")}
	if fmt.Sprint(ch.Payload) != fmt.Sprint(want) {
		t.Errorf("Payload = %#v, want %#v", ch.Payload, want)
	}
	if ch.Position.Version != webhook.PositionVersion || string(ch.Position.Data) != "d-1" {
		t.Errorf("Position = %v, want v1:d-1", ch.Position)
	}
	if ch.Source.System != "webhook" || ch.Source.Endpoint != "/hooks/acme/orders" || ch.Source.CommitTime.IsZero() {
		t.Errorf("Source = %+v", ch.Source)
	}
	if string(ch.Raw) != `{"id":"o-1","total":12.5}` {
		t.Errorf("Raw = %q", ch.Raw)
	}
	m := ch.Meta
	hd := m["headers"].(map[string]any)
	if hd["X-Delivery"] != "d-1" || hd["Content-Type"] != "application/json; charset=utf-8" {
		t.Errorf("meta.headers = %v", hd)
	}
	if _, leaked := hd["Authorization"]; leaked {
		t.Errorf("meta.headers carries Authorization")
	}
	if q := m["query"].(map[string]any); q["src"] != "erp" || q["x"] != "1" {
		t.Errorf("meta.query = %v", q)
	}
	if p := m["path"].(map[string]any); p["tenant"] != "acme" {
		t.Errorf("meta.path = %v", p)
	}
	if m["method"] != "POST" || m["delivery_id"] != "d-1" || m["content_type"] != "application/json" || m["remote_addr"] == "" {
		t.Errorf("meta = %v", m)
	}
	// The same delivery read back from disk after a restart is equal.
	h.restart(core.Position{})
	again := h.readN(1)[0]
	if fmt.Sprint(again) != fmt.Sprint(ch) {
		t.Errorf("change after restart differs:\n got %+v\nwant %+v", again, ch)
	}
}

func TestReadAckRestart(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	for i := range 10 {
		if a := h.post(fmt.Sprintf(`{"n":%d}`, i), map[string]string{"X-Delivery": fmt.Sprintf("d-%d", i)}); a.status != 200 {
			t.Fatalf("delivery %d: %d %s", i, a.status, a.raw)
		}
	}
	chs := h.readN(10)
	want := []string{"d-0", "d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7", "d-8", "d-9"}
	if got := ids(chs); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ids = %v, want %v", got, want)
	}
	// Ack the first four; the other six are replayed after a restart.
	if err := h.src.Ack(context.Background(), chs[3].Position); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	if err := h.src.Ack(context.Background(), chs[3].Position); err == nil {
		t.Errorf("second Ack() of the same position = nil, want an error")
	}
	if p := h.pending(); p != 6 {
		t.Errorf("pending after ack = %d, want 6", p)
	}
	h.restart(core.Position{})
	replay := h.readN(6)
	if got := ids(replay); fmt.Sprint(got) != fmt.Sprint(want[4:]) {
		t.Fatalf("replayed ids = %v, want %v", got, want[4:])
	}
	// New deliveries come after the replayed ones.
	h.post(`{"n":10}`, map[string]string{"X-Delivery": "d-10"})
	if got := ids(h.readN(1)); got[0] != "d-10" {
		t.Fatalf("next id = %v, want d-10", got)
	}
	if err := h.src.Ack(context.Background(), core.Position{Version: 1, Data: []byte("d-10")}); err != nil {
		t.Fatalf("Ack() error = %v", err)
	}
	if p := h.pending(); p != 0 {
		t.Errorf("pending after acking everything = %d, want 0", p)
	}
	h.restart(core.Position{})
	h.readNone()
}

func TestOpenFromCheckpointDropsStoredDeliveries(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	for i := range 5 {
		h.post(`{}`, map[string]string{"X-Delivery": fmt.Sprintf("d-%d", i)})
	}
	h.readN(5)
	// The stream stored d-0..d-2 and their checkpoint, but the ack never
	// reached the source before it stopped.
	h.restart(core.Position{Version: 1, Data: []byte("d-2")})
	if got := ids(h.readN(2)); fmt.Sprint(got) != "[d-3 d-4]" {
		t.Fatalf("ids after reopening from d-2 = %v, want [d-3 d-4]", got)
	}
	if p := h.pending(); p != 2 {
		t.Errorf("pending = %d, want 2", p)
	}
}

func TestDuplicates(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	first := h.post(`{"a":1}`, map[string]string{"X-Delivery": "same"})
	second := h.post(`{"a":1}`, map[string]string{"X-Delivery": "same"})
	if first.body["status"] != "accepted" || second.status != 200 || second.body["status"] != "duplicate" {
		t.Fatalf("answers = %s, %d %s; want accepted then 200 duplicate", first.raw, second.status, second.raw)
	}
	// Without a sender id, the body's hash is the id.
	b1 := h.post(`{"b":1}`, nil)
	b2 := h.post(`{"b":1}`, nil)
	if b2.body["status"] != "duplicate" || !strings.HasPrefix(b1.body["delivery_id"].(string), "sha256:") {
		t.Fatalf("answers = %s, %s; want a sha256 id then duplicate", b1.raw, b2.raw)
	}
	chs := h.readN(2)
	if err := h.src.Ack(context.Background(), chs[1].Position); err != nil {
		t.Fatal(err)
	}
	// A retry after the delivery left the inbox is still a duplicate.
	h.restart(core.Position{})
	if a := h.post(`{"a":1}`, map[string]string{"X-Delivery": "same"}); a.body["status"] != "duplicate" {
		t.Fatalf("retry after restart = %s, want duplicate", a.raw)
	}
	h.readNone()
	if got := metricValue(t, h.reg, "tributary_webhook_deliveries_duplicate_total", ""); got != 3 {
		t.Errorf("duplicate counter = %v, want 3", got)
	}
}

func TestDedupWindowExpires(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, DedupWindow: time.Hour, Now: now})
	h.post(`{}`, map[string]string{"X-Delivery": "x"})
	// Ids are remembered for at least one window...
	clock.Add(int64(50 * time.Minute))
	if a := h.post(`{}`, map[string]string{"X-Delivery": "x"}); a.body["status"] != "duplicate" {
		t.Fatalf("within the window = %s, want duplicate", a.raw)
	}
	h.restart(core.Position{})
	if a := h.post(`{}`, map[string]string{"X-Delivery": "x"}); a.body["status"] != "duplicate" {
		t.Fatalf("within the window after a restart = %s, want duplicate", a.raw)
	}
	// ...and forgotten after at most about 1.2 (a slot of the window and
	// a sealing age later).
	clock.Add(int64(2 * time.Hour))
	h.post(`{}`, map[string]string{"X-Delivery": "y"})
	clock.Add(int64(2 * time.Hour))
	if a := h.post(`{}`, map[string]string{"X-Delivery": "x"}); a.body["status"] != "accepted" {
		t.Fatalf("after two windows = %s, want accepted", a.raw)
	}
}

func TestStatusCodes(t *testing.T) {
	verifier := webhook.VerifierFunc(func(r *http.Request, _ []byte) error {
		if r.Header.Get("X-Token") != "ok" {
			return webhook.ErrUnverified
		}
		return nil
	})
	h := newHarness(t, webhook.Config{
		Path: "/hooks/orders", Verifier: verifier, MaxBodyBytes: 64,
		Handshake: func(r *webhook.Request) (webhook.Reply, bool) {
			if c := r.HTTP.URL.Query().Get("challenge"); c != "" {
				return webhook.Reply{Body: []byte(c)}, true
			}
			return webhook.Reply{}, false
		},
	})
	ok := map[string]string{"X-Token": "ok"}
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		hdr         map[string]string
		want        int
		wantReason  string
	}{
		{name: "accepted", method: "POST", contentType: "application/json", body: `{"a":1}`, hdr: ok, want: 200},
		{name: "no content type is json", method: "POST", body: `{"a":2}`, hdr: ok, want: 200},
		{name: "form", method: "POST", contentType: "application/x-www-form-urlencoded", body: `a=1`, hdr: ok, want: 200},
		{name: "xml", method: "POST", contentType: "text/xml", body: `<a>1</a>`, hdr: ok, want: 200},
		{name: "empty body", method: "POST", hdr: ok, want: 200},
		{name: "wrong method", method: "PUT", contentType: "application/json", body: `{}`, hdr: ok, want: 405, wantReason: webhook.ReasonMethod},
		{name: "get without challenge", method: "GET", hdr: ok, want: 405, wantReason: webhook.ReasonMethod},
		{name: "too large", method: "POST", contentType: "application/json", body: `{"a":"` + strings.Repeat("x", 100) + `"}`, hdr: ok, want: 413, wantReason: webhook.ReasonTooLarge},
		{name: "unverified", method: "POST", contentType: "application/json", body: `{"a":3}`, want: 401, wantReason: webhook.ReasonSignature},
		{name: "unsupported type", method: "POST", contentType: "image/png", body: `x`, hdr: ok, want: 415, wantReason: webhook.ReasonUnsupportedType},
		{name: "bad json", method: "POST", contentType: "application/json", body: `{"a":`, hdr: ok, want: 400, wantReason: webhook.ReasonBadBody},
		{name: "bad xml", method: "POST", contentType: "application/xml", body: `<a>`, hdr: ok, want: 400, wantReason: webhook.ReasonBadBody},
		{name: "challenge", method: "GET", path: "/hooks/orders?challenge=abc", want: 200},
		{name: "unknown path", method: "POST", path: "/hooks/other", contentType: "application/json", body: `{}`, hdr: ok, want: 404},
	}
	accepted := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/hooks/orders"
			}
			var before float64
			if tt.wantReason != "" {
				before = metricValue(t, h.reg, "tributary_webhook_deliveries_rejected_total", tt.wantReason)
			}
			a := h.do(tt.method, path, tt.contentType, tt.body, tt.hdr)
			if a.status != tt.want {
				t.Fatalf("status = %d (%s), want %d", a.status, a.raw, tt.want)
			}
			if tt.wantReason != "" {
				if a.body["error"] == nil || a.body["error"] == "" {
					t.Errorf("body = %s, want a JSON error", a.raw)
				}
				after := metricValue(t, h.reg, "tributary_webhook_deliveries_rejected_total", tt.wantReason)
				if after != before+1 {
					t.Errorf("rejected{reason=%s} went %v -> %v, want +1", tt.wantReason, before, after)
				}
			}
			if tt.want == 405 && a.header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", a.header.Get("Allow"))
			}
			if tt.name == "challenge" && a.raw != "abc" {
				t.Errorf("challenge answer = %q, want abc", a.raw)
			}
			if a.status == 200 && tt.name != "challenge" {
				accepted++
			}
		})
	}
	// Only accepted deliveries are emitted.
	chs := h.readN(accepted)
	h.readNone()
	if chs[3].Payload.(map[string]any)["a"] != "1" {
		t.Errorf("xml payload = %v", chs[3].Payload)
	}
	if got := metricValue(t, h.reg, "tributary_webhook_deliveries_accepted_total", ""); got != float64(accepted) {
		t.Errorf("accepted counter = %v, want %d", got, accepted)
	}
}

func TestBackpressure(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, MaxPending: 3, RetryAfter: 2 * time.Second})
	for i := range 3 {
		if a := h.post(`{}`, map[string]string{"X-Delivery": fmt.Sprint(i)}); a.status != 200 {
			t.Fatalf("delivery %d = %d", i, a.status)
		}
	}
	a := h.post(`{}`, map[string]string{"X-Delivery": "refused"})
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "2" {
		t.Fatalf("answer = %d Retry-After %q, want 503 with Retry-After 2", a.status, a.header.Get("Retry-After"))
	}
	// Reading does not free room; acking does.
	chs := h.readN(3)
	if a := h.post(`{}`, map[string]string{"X-Delivery": "refused"}); a.status != 503 {
		t.Fatalf("answer before ack = %d, want 503", a.status)
	}
	if err := h.src.Ack(context.Background(), chs[0].Position); err != nil {
		t.Fatal(err)
	}
	// The refused delivery was never stored: its retry is accepted, not a
	// duplicate.
	if a := h.post(`{}`, map[string]string{"X-Delivery": "refused"}); a.status != 200 || a.body["status"] != "accepted" {
		t.Fatalf("retry after ack = %d %s, want 200 accepted", a.status, a.raw)
	}
	h.restart(core.Position{})
	if got := ids(h.readN(3)); fmt.Sprint(got) != "[1 2 refused]" {
		t.Fatalf("stored ids = %v, want [1 2 refused]", got)
	}
	h.readNone()
}

func TestBackpressureBytes(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", MaxPendingBytes: 100})
	big := `{"x":"` + strings.Repeat("a", 150) + `"}`
	// A delivery larger than the bound passes when the inbox is empty.
	if a := h.post(big, nil); a.status != 200 {
		t.Fatalf("first = %d", a.status)
	}
	if a := h.post(`{"y":1}`, nil); a.status != 503 {
		t.Fatalf("second = %d, want 503", a.status)
	}
}

func TestClosedSourceRefuses(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders"})
	if err := h.src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := h.post(`{}`, nil); a.status != 404 {
		t.Errorf("after Close = %d, want 404 (unmounted)", a.status)
	}
	if _, err := h.src.Read(context.Background()); !errors.Is(err, webhook.ErrClosed) {
		t.Errorf("Read() after Close = %v, want ErrClosed", err)
	}
}

func TestReadUnblocksOnClose(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders"})
	errc := make(chan error, 1)
	go func() {
		_, err := h.src.Read(context.Background())
		errc <- err
	}()
	if err := h.src.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Fatal("Read() returned nil error after Close")
	}
}

func TestOpenNeedsListener(t *testing.T) {
	src, err := webhook.NewSource(webhook.Config{Path: "/hooks/x"})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Open(context.Background(), core.Env{Name: "x", StateDir: t.TempDir()}, core.Position{})
	if !errors.Is(err, core.ErrFatal) || !strings.Contains(err.Error(), "http.address") {
		t.Fatalf("Open() without a router = %v, want a fatal error naming http.address", err)
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatalf("Close() after failed Open = %v", err)
	}
}

func TestConcurrentDeliveriesAllStoredOnce(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	const n, workers = 200, 8
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := w; i < n; i += workers {
				req, _ := http.NewRequest("POST", h.srv.URL+"/hooks/orders", bytes.NewReader([]byte(`{}`)))
				req.Header.Set("X-Delivery", fmt.Sprint(i))
				resp, err := h.srv.Client().Do(req)
				if err != nil {
					errc <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errc <- fmt.Errorf("delivery %d: status %d", i, resp.StatusCode)
					return
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	chs := h.readN(n)
	seen := map[string]bool{}
	for _, c := range chs {
		seen[string(c.Position.Data)] = true
	}
	if len(seen) != n {
		t.Fatalf("distinct deliveries = %d, want %d", len(seen), n)
	}
}

// metricValue returns a counter's value by metric name and reason label
// ("" matches any), or 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := reason == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestLargeDeliveriesSurviveRestart(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, MaxBodyBytes: 2 << 20})
	const n = 16 // 16 × 1.5 MiB needs two transactions of at most 16 MiB
	errc := make(chan error, n)
	for i := range n {
		go func() {
			body := `{"i":` + fmt.Sprint(i) + `,"pad":"` + strings.Repeat("x", 3<<19) + `"}`
			req, _ := http.NewRequest("POST", h.srv.URL+"/hooks/orders", strings.NewReader(body))
			req.Header.Set("X-Delivery", fmt.Sprint("big-", i))
			resp, err := h.srv.Client().Do(req)
			if err != nil {
				errc <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("delivery %d: status %d", i, resp.StatusCode)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	h.restart(core.Position{})
	chs := h.readN(n)
	for _, c := range chs {
		if len(c.Raw) < 3<<19 {
			t.Fatalf("delivery %s came back with %d bytes", c.Position, len(c.Raw))
		}
	}
}

// TestReadAfterQuietSpellDoesNotWait checks that a delivery arriving after
// a quiet spell is handed over at once, even to a Read whose context is
// already done, as a stop right after it would be: Read lingers for more
// deliveries only while they keep coming.
func TestReadAfterQuietSpellDoesNotWait(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	if a := h.post(`{"n":0}`, map[string]string{"X-Delivery": "first"}); a.status != 200 {
		t.Fatalf("delivery = %d %s", a.status, a.raw)
	}
	h.readN(1)
	// The quiet spell: longer than a busy reader's gap between Reads.
	time.Sleep(50 * time.Millisecond)
	if a := h.post(`{"n":1}`, map[string]string{"X-Delivery": "lone"}); a.status != 200 {
		t.Fatalf("delivery = %d %s", a.status, a.raw)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A delivery answered 2xx is already queued for Read.
	chs, err := h.src.Read(ctx)
	if err != nil || len(chs) != 1 || string(chs[0].Position.Data) != "lone" {
		t.Fatalf("Read() = %d changes, %v; want the lone delivery at once", len(chs), err)
	}
}
