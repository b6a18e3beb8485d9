package cli_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// These tests run the built binary from events in to a receiver the test
// starts, once on the embedded stream and once on the real Kafka broker
// (skipped without it unless TRIBUTARY_REQUIRE_SERVICES=1; each run has
// its own topics, checkpoint topic and sink names).

// sinkE2E is one sidecar configuration under test: its directory, its
// addresses, the stream section and the name of its sinks.
type sinkE2E struct {
	t      *testing.T
	dir    string
	admin  string
	hook   string // the webhook connector's URL
	http   string // the shared listener's address
	stream string // the stream: section
	// suffix makes sink names unique on a shared broker, where a sink's
	// consumer group is named after it.
	suffix string
}

// forEachStream runs body on the embedded stream, then on Kafka.
func forEachStream(t *testing.T, body func(t *testing.T, e *sinkE2E)) {
	t.Run("embedded", func(t *testing.T) {
		body(t, newSinkE2E(t, "stream: {type: embedded}", ""))
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := servicetest.Kafka(t)
		n := time.Now().UnixNano()
		prefix := fmt.Sprintf("sinke2e.%d.", n)
		stream := fmt.Sprintf(`stream:
  type: kafka
  topics: {mode: per_type, prefix: %q}
  dead_letter_topic: %q
  config: {brokers: [%q], checkpoint_topic: %q}`, prefix, prefix+"deadletter", brokers[0], prefix+"checkpoints")
		body(t, newSinkE2E(t, stream, fmt.Sprintf("_%d", n%1_000_000_000)))
	})
}

func newSinkE2E(t *testing.T, stream, suffix string) *sinkE2E {
	dir := t.TempDir()
	e := &sinkE2E{t: t, dir: dir, admin: freeAddr(t), http: freeAddr(t), stream: stream, suffix: suffix}
	e.hook = "http://" + e.http + "/hooks/shop"
	return e
}

// name is a sink's name in this configuration.
func (e *sinkE2E) name(base string) string { return base + e.suffix }

// sinkE2EConfig is the sidecar configuration of these tests: the webhook
// connector of sidecarConfig, a catalog with its order type and the
// counted type of files_poll connectors, then the connectors and sinks
// each test adds.
const sinkE2EConfig = `
version: 1
state_dir: %s
log: {level: warn}
admin: {address: %s}
http: {address: %s}
shutdown: {timeout: 10s}
%s
catalog:
  - type: com.example.order.placed
    version: "1"
    schema:
      type: object
      required: [order_id, total]
      properties:
        order_id: {type: string}
        total: {type: number, minimum: 0}
  - type: com.example.seq.counted
    version: "1"
    schema:
      type: object
      required: [key, seq]
      properties:
        key: {type: string}
        seq: {type: integer}
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
%s
sinks:
%s
`

// write writes the configuration with the given connectors and sinks
// (YAML list items) and returns its file.
func (e *sinkE2E) write(connectors, sinks string) string {
	e.t.Helper()
	file := filepath.Join(e.dir, "tributary.yaml")
	doc := fmt.Sprintf(sinkE2EConfig, filepath.Join(e.dir, "state"), e.admin, e.http, e.stream, connectors, sinks)
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return file
}

// start runs the binary on file and waits until /readyz answers 200.
func (e *sinkE2E) start(file string) *sidecarProcess {
	e.t.Helper()
	p := startSidecar(e.t, file)
	eventually(e.t, p, 60*time.Second, "the sidecar is ready", func() (bool, string) {
		code, body := readyz(e.admin)
		return code == http.StatusOK, fmt.Sprint(code, body)
	})
	return p
}

// sink returns /v1/sinks/{name}.
func (e *sinkE2E) sink(name string) (sinkStatusE2E, error) {
	var st sinkStatusE2E
	resp, err := http.Get("http://" + e.admin + "/v1/sinks/" + name)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/sinks/%s answered %d", name, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// waitSink polls /v1/sinks/{name} until cond holds.
func (e *sinkE2E) waitSink(p *sidecarProcess, name, what string, d time.Duration, cond func(sinkStatusE2E) bool) sinkStatusE2E {
	e.t.Helper()
	var st sinkStatusE2E
	eventually(e.t, p, d, "sink "+name+" "+what, func() (bool, string) {
		var err error
		st, err = e.sink(name)
		if err != nil {
			return false, err.Error()
		}
		return cond(st), fmt.Sprintf("%+v", st)
	})
	return st
}

// sinkStatusE2E is the part of /v1/sinks/{name} these tests read.
type sinkStatusE2E struct {
	State          string `json:"state"`
	Error          string `json:"error"`
	LastError      string `json:"last_error"`
	Lag            int64  `json:"lag"`
	Delivered      uint64 `json:"delivered"`
	Retried        uint64 `json:"retried"`
	DeadLettered   uint64 `json:"dead_lettered"`
	RetriesPending int    `json:"retries_pending"`
}

// kill9 ends the sidecar with SIGKILL, as a crash would, and waits for it;
// startSidecar's cleanup then finds it ended.
func kill9(t *testing.T, p *sidecarProcess) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
}

// hook is one request a hookReceiver received.
type hook struct {
	At                       time.Time
	Method, Path             string
	ContentType              string
	ID, Timestamp, Signature string // the webhook-* headers
	Body                     []byte
	// Event is the body read as a structured CloudEvent.
	Event struct {
		ID           string         `json:"id"`
		Type         string         `json:"type"`
		Subject      string         `json:"subject"`
		PartitionKey string         `json:"partitionkey"`
		Data         map[string]any `json:"data"`
	}
}

// hookReceiver is an HTTP endpoint that records every request and answers
// what answer says (200 when answer is nil).
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []hook
	answer func(h *hook, n int, w http.ResponseWriter) int // n: requests before this one
}

func newHookReceiver(t *testing.T, answer func(h *hook, n int, w http.ResponseWriter) int) *hookReceiver {
	t.Helper()
	r := &hookReceiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := hook{
			At: time.Now(), Method: req.Method, Path: req.URL.Path, ContentType: req.Header.Get("Content-Type"),
			ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"), Signature: req.Header.Get("webhook-signature"),
		}
		h.Body, _ = io.ReadAll(req.Body)
		_ = json.Unmarshal(h.Body, &h.Event)
		r.mu.Lock()
		n := len(r.got)
		r.got = append(r.got, h)
		r.mu.Unlock()
		status := http.StatusOK
		if r.answer != nil {
			status = r.answer(&h, n, w)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) hooks() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// labels lists the requests received, in order, each as the order id
// and the total of its event: "A/2" is the second event of order A.
func (r *hookReceiver) labels() []string {
	var out []string
	for _, h := range r.hooks() {
		out = append(out, h.label())
	}
	return out
}

func (h *hook) label() string {
	return fmt.Sprintf("%s/%v", h.Event.Subject, h.Event.Data["total"])
}

// placedID is the id of the event the webhook connector emits for a
// delivery with X-Delivery-Id id.
func placedID(id string) string {
	return core.EventID("shop", core.Position{Version: 1, Data: []byte(id)}, "placed")
}

// httpSink is an http sink's YAML list item: name, receiver URL, retry
// schedule and more of its config keys.
func httpSink(name, url, schedule, config string) string {
	return fmt.Sprintf(`  - name: %s
    type: http
    events: [com.example.order.*]
    retry: {schedule: [%s]}
    config: {url: %q%s}
`, name, schedule, url, config)
}

// postEvents posts one webhook delivery per label, in order: "A/2" is the
// second event of order A (partition key A), of delivery id d-A-2 and
// total 2.
func postEvents(t *testing.T, hook string, labels ...string) {
	t.Helper()
	for _, l := range labels {
		order, n, _ := strings.Cut(l, "/")
		resp, body := postRaw(t, hook, "d-"+order+"-"+n, fmt.Sprintf(`{"id":%q,"total":%s}`, order, n))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("delivery of %s answered %d: %s", l, resp.StatusCode, body)
		}
	}
}

// eventID is the id of the event of label (see postEvents).
func eventID(label string) string {
	order, n, _ := strings.Cut(label, "/")
	return placedID("d-" + order + "-" + n)
}

// TestSinkE2EWebhookToReceiver: signed webhook deliveries in, signed
// CloudEvents out to the receiver, each with the event id in webhook-id,
// a Standard Webhooks signature that verifies under the secret, the
// order's data, and the events of one order in order.
func TestSinkE2EWebhookToReceiver(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		key := []byte("tributary-e2e-signing-key-0001")
		secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
		rcv := newHookReceiver(t, nil)
		name := e.name("partner")
		file := e.write("", httpSink(name, rcv.URL+"/in", "100ms", fmt.Sprintf(", signing_secrets: [%q]", secret)))
		p := e.start(file)

		sent := []string{"A/1", "B/1", "A/2", "C/1", "A/3", "B/2"}
		postEvents(t, e.hook, sent...)
		e.waitSink(p, name, "delivered all", 30*time.Second, func(s sinkStatusE2E) bool { return s.Delivered == uint64(len(sent)) && s.Lag == 0 })

		got := rcv.hooks()
		if len(got) != len(sent) {
			t.Fatalf("receiver got %v, want each of %v once", rcv.labels(), sent)
		}
		perOrder := map[string][]string{}
		for _, h := range got {
			want := eventID(h.label())
			if h.Method != "POST" || h.Path != "/in" || !strings.HasPrefix(h.ContentType, "application/cloudevents+json") {
				t.Errorf("request %s %s %s, want POST /in of application/cloudevents+json", h.Method, h.Path, h.ContentType)
			}
			if h.ID != want || h.Event.ID != want || h.Event.Type != "com.example.order.placed" || h.Event.PartitionKey != h.Event.Subject {
				t.Errorf("%s: webhook-id %q, event id %q, type %q, partition key %q; want both ids %q, type com.example.order.placed, the order as key", h.label(), h.ID, h.Event.ID, h.Event.Type, h.Event.PartitionKey, want)
			}
			if h.Event.Data["order_id"] != h.Event.Subject {
				t.Errorf("%s: data %v, want the order", h.label(), h.Event.Data)
			}
			mac := hmac.New(sha256.New, key)
			fmt.Fprintf(mac, "%s.%s.%s", h.ID, h.Timestamp, h.Body)
			if sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); h.Signature != sig {
				t.Errorf("%s: webhook-signature %q, want %q", h.label(), h.Signature, sig)
			}
			perOrder[h.Event.Subject] = append(perOrder[h.Event.Subject], h.label())
		}
		for order, want := range map[string][]string{"A": {"A/1", "A/2", "A/3"}, "B": {"B/1", "B/2"}, "C": {"C/1"}} {
			if !slices.Equal(perOrder[order], want) {
				t.Errorf("order %s's events arrived as %v, want %v", order, perOrder[order], want)
			}
		}
	})
}

// TestSinkE2EServerErrorsThenRecovers: the receiver answers 500 to the
// first four requests, then 200. The first event is tried again on the
// schedule with the same id until it is delivered; the events behind it of
// its key wait and follow in order; nothing is dead-lettered.
func TestSinkE2EServerErrorsThenRecovers(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		rcv := newHookReceiver(t, func(_ *hook, n int, _ http.ResponseWriter) int {
			if n < 4 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		name := e.name("flaky")
		file := e.write("", httpSink(name, rcv.URL, "100ms, 200ms, 300ms, 400ms, 500ms", ""))
		p := e.start(file)

		postEvents(t, e.hook, "A/1", "A/2", "A/3")
		st := e.waitSink(p, name, "delivered 3", 30*time.Second, func(s sinkStatusE2E) bool { return s.Delivered == 3 && s.Lag == 0 })
		if st.Retried != 4 || st.DeadLettered != 0 || st.RetriesPending != 0 || st.State != "running" || !strings.Contains(st.LastError, "500") {
			t.Errorf("status %+v, want 4 retries, none dead-lettered or pending, running, the 500 as last error", st)
		}
		got := rcv.hooks()
		want := []string{"A/1", "A/1", "A/1", "A/1", "A/1", "A/2", "A/3"}
		if l := rcv.labels(); !slices.Equal(l, want) {
			t.Fatalf("receiver got %v, want %v", l, want)
		}
		for _, h := range got[:5] {
			if h.ID != eventID("A/1") {
				t.Errorf("an attempt of A/1 had webhook-id %q, want %q on every attempt", h.ID, eventID("A/1"))
			}
		}
		for i := 1; i < 5; i++ {
			if gap := got[i].At.Sub(got[i-1].At); gap < 90*time.Millisecond {
				t.Errorf("attempt %d came %s after the one before; the schedule waits at least 100ms", i+1, gap)
			}
		}
	})
}

// TestSinkE2EGoneStopsSinkUntilResumed: a receiver answering 410 Gone
// stops the sink; /readyz answers 503 naming it and why; an event posted
// meanwhile waits. Once the receiver is back, resuming the sink delivers
// both events, in order, and /readyz answers 200 again.
func TestSinkE2EGoneStopsSinkUntilResumed(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		var mu sync.Mutex
		gone := true
		rcv := newHookReceiver(t, func(*hook, int, http.ResponseWriter) int {
			mu.Lock()
			defer mu.Unlock()
			if gone {
				return http.StatusGone
			}
			return http.StatusOK
		})
		name := e.name("removed")
		file := e.write("", httpSink(name, rcv.URL, "100ms", ""))
		p := e.start(file)

		postEvents(t, e.hook, "A/1")
		st := e.waitSink(p, name, "failed", 30*time.Second, func(s sinkStatusE2E) bool { return s.State == "failed" })
		if !strings.Contains(st.Error, "410") || !strings.Contains(st.Error, "restart the sink") {
			t.Errorf("error %q, want the 410 and what to do", st.Error)
		}
		eventually(t, p, 10*time.Second, "readyz 503 naming the sink", func() (bool, string) {
			var ready struct {
				NotReady map[string]string `json:"not_ready"`
			}
			code, body := readyz(e.admin)
			_ = json.Unmarshal([]byte(body), &ready)
			why := ready.NotReady["sink:"+name]
			return code == http.StatusServiceUnavailable && strings.HasPrefix(why, "failed") && strings.Contains(why, "410"), fmt.Sprint(code, body)
		})
		postEvents(t, e.hook, "A/2", "B/1")
		time.Sleep(300 * time.Millisecond) // a running sink would have delivered them by now
		if l := rcv.labels(); !slices.Equal(l, []string{"A/1"}) {
			t.Fatalf("receiver got %v while the sink was stopped, want only A/1 (answered 410)", l)
		}

		mu.Lock()
		gone = false
		mu.Unlock()
		if code := adminPost(t, e.admin, "/v1/sinks/"+name+"/resume"); code != http.StatusOK {
			t.Fatalf("resume answered %d", code)
		}
		e.waitSink(p, name, "delivered all after resuming", 30*time.Second, func(s sinkStatusE2E) bool {
			return s.State == "running" && s.Delivered == 3 && s.Lag == 0
		})
		var a []string
		for _, l := range rcv.labels() {
			if strings.HasPrefix(l, "A/") {
				a = append(a, l)
			}
		}
		if !slices.Equal(a, []string{"A/1", "A/1", "A/2"}) {
			t.Errorf("receiver got %v of order A, want A/1 (410), then A/1 and A/2", a)
		}
		eventually(t, p, 10*time.Second, "readyz 200 again", func() (bool, string) {
			code, body := readyz(e.admin)
			return code == http.StatusOK, fmt.Sprint(code, body)
		})
	})
}

// TestSinkE2ERetryAfterHonoured: a receiver answering 429 with
// Retry-After: 2 gets the event again no sooner than 2 s later, although
// the sink's own schedule would retry after 50 ms; the event of another
// order goes meanwhile.
func TestSinkE2ERetryAfterHonoured(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		var limited sync.Once
		rcv := newHookReceiver(t, func(h *hook, _ int, w http.ResponseWriter) int {
			first := false
			if h.Event.Subject == "A" {
				limited.Do(func() { first = true })
			}
			if first {
				w.Header().Set("Retry-After", "2")
				return http.StatusTooManyRequests
			}
			return http.StatusOK
		})
		name := e.name("limited")
		file := e.write("", httpSink(name, rcv.URL, "50ms, 50ms", ""))
		p := e.start(file)

		postEvents(t, e.hook, "A/1", "B/1")
		st := e.waitSink(p, name, "delivered", 30*time.Second, func(s sinkStatusE2E) bool { return s.Delivered == 2 })
		var got []hook // order A's requests
		for _, h := range rcv.hooks() {
			if h.Event.Subject == "A" {
				got = append(got, h)
			}
		}
		if l := rcv.labels(); len(l) != 3 || len(got) != 2 || l[2] != "A/1" {
			t.Fatalf("receiver got %v, want A/1 (429) and B/1, then A/1 again", l)
		}
		if got[0].ID != got[1].ID {
			t.Errorf("the retry's webhook-id %q differs from the first attempt's %q", got[1].ID, got[0].ID)
		}
		if gap := got[1].At.Sub(got[0].At); gap < 1900*time.Millisecond {
			t.Errorf("the retry came %s after the 429, want at least the 2s of Retry-After", gap)
		}
		if st.Retried != 1 || st.DeadLettered != 0 || !strings.Contains(st.LastError, "429") {
			t.Errorf("status %+v, want one retry after the 429, nothing dead-lettered", st)
		}
	})
}

// TestSinkE2ESlowKeyDoesNotStopOthers: the receiver holds every request
// for order S until the test lets it go. Meanwhile the events of other
// orders, posted after S's, are all delivered; S's second event waits for
// its first, and both arrive in order once it is let go.
func TestSinkE2ESlowKeyDoesNotStopOthers(t *testing.T) {
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		release := make(chan struct{})
		rcv := newHookReceiver(t, func(h *hook, _ int, _ http.ResponseWriter) int {
			if h.Event.Subject == "S" {
				<-release
			}
			return http.StatusOK
		})
		var once sync.Once
		letGo := func() { once.Do(func() { close(release) }) }
		t.Cleanup(letGo)
		name := e.name("slow")
		file := e.write("", httpSink(name, rcv.URL, "100ms", ", timeout: 60s"))
		p := e.start(file)

		postEvents(t, e.hook, "S/1")
		eventually(t, p, 30*time.Second, "the receiver holds S/1", func() (bool, string) {
			l := rcv.labels()
			return slices.Contains(l, "S/1"), fmt.Sprint(l)
		})
		others := []string{"S/2"}
		for i := 1; i <= 5; i++ {
			for _, k := range []string{"A", "B", "C", "D"} {
				others = append(others, fmt.Sprintf("%s/%d", k, i))
			}
		}
		postEvents(t, e.hook, others...)
		others = others[1:]
		eventually(t, p, 30*time.Second, "the other orders delivered while S/1 is held", func() (bool, string) {
			l := rcv.labels()
			for _, o := range others {
				if !slices.Contains(l, o) {
					return false, fmt.Sprint(l)
				}
			}
			return true, ""
		})
		if l := rcv.labels(); slices.Contains(l, "S/2") {
			t.Fatalf("receiver got %v: S/2 before S/1 was answered", l)
		}
		letGo()
		e.waitSink(p, name, "delivered all", 30*time.Second, func(s sinkStatusE2E) bool { return s.Delivered == uint64(len(others)+2) && s.Lag == 0 })
		var s []string
		for _, l := range rcv.labels() {
			if strings.HasPrefix(l, "S/") {
				s = append(s, l)
			}
		}
		if !slices.Equal(s, []string{"S/1", "S/2"}) {
			t.Errorf("receiver got %v of order S, want S/1 then S/2", s)
		}
	})
}

// countedConnector is a files_poll connector reading JSON Lines files of
// {"key": K, "seq": N} from dir into com.example.seq.counted events of
// partition key K: many events quickly, with no HTTP request each.
const countedConnector = `  - name: counter
    type: files_poll
    config: {dir: %q, pattern: "*.jsonl", format: jsonl, ready: marker, schedule: "@every 200ms"}
    emit:
      - name: counted
        type: com.example.seq.counted
        subject: after.key
        partition_key: after.key
        data: {key: after.key, seq: after.seq}
`

// writeCounts writes a JSON Lines file of n records over keys keys into a
// new inbox directory, record i being {"key": "k<i%keys>", "seq":
// i/keys}, and its marker; it returns the directory.
func writeCounts(t *testing.T, dir string, n, keys int) string {
	t.Helper()
	inbox := filepath.Join(dir, "inbox")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"key\":\"k%02d\",\"seq\":%d}\n", i%keys, i/keys)
	}
	file := filepath.Join(inbox, "counts.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".done", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return inbox
}

// countingReceiver counts the deliveries of each event id and checks, as
// they arrive, what a receiver may rely on: one event id is always the
// same event (key and seq), never two deliveries of one key at once, and
// no event of a key before every earlier one was delivered.
type countingReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	ids      map[string]int    // deliveries per event id
	idOf     map[string]string // "key/seq" to the event id it came with
	next     map[string]int    // per key, the seq after the highest delivered
	busy     map[string]bool   // keys with a request being answered
	requests int
	problems []string
}

func newCountingReceiver(t *testing.T) *countingReceiver {
	t.Helper()
	r := &countingReceiver{ids: map[string]int{}, idOf: map[string]string{}, next: map[string]int{}, busy: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev struct {
			ID   string `json:"id"`
			Data struct {
				Key string `json:"key"`
				Seq int    `json:"seq"`
			} `json:"data"`
		}
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil || ev.ID == "" || req.Header.Get("webhook-id") != ev.ID {
			r.problem(fmt.Sprintf("a request with webhook-id %q: %v", req.Header.Get("webhook-id"), err))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		k, seq := ev.Data.Key, ev.Data.Seq
		r.mu.Lock()
		r.requests++
		if r.busy[k] {
			r.problemLocked(fmt.Sprintf("key %s: seq %d delivered while an earlier delivery of the key was not answered", k, seq))
		}
		r.busy[k] = true
		if seq > r.next[k] {
			r.problemLocked(fmt.Sprintf("key %s: seq %d delivered before seq %d", k, seq, r.next[k]))
		}
		r.next[k] = max(r.next[k], seq+1)
		ks := fmt.Sprintf("%s/%d", k, seq)
		if id, ok := r.idOf[ks]; ok && id != ev.ID {
			r.problemLocked(fmt.Sprintf("key %s seq %d came with id %s, earlier with %s", k, seq, ev.ID, id))
		}
		r.idOf[ks] = ev.ID
		r.ids[ev.ID]++
		r.mu.Unlock()
		// The answer goes once the handler returns: the key is free then.
		defer func() {
			r.mu.Lock()
			r.busy[k] = false
			r.mu.Unlock()
		}()
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *countingReceiver) problem(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problemLocked(p)
}

func (r *countingReceiver) problemLocked(p string) {
	if len(r.problems) < 20 {
		r.problems = append(r.problems, p)
	}
}

// counts returns the number of distinct event ids delivered and of
// requests.
func (r *countingReceiver) counts() (ids, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids), r.requests
}

// check fails t unless every one of n events over keys keys was delivered,
// with none of the problems the receiver looks for.
func (r *countingReceiver) check(t *testing.T, n, keys int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
	if len(r.ids) != n || len(r.idOf) != n {
		t.Errorf("%d event ids and %d (key, seq) pairs delivered, want %d of each", len(r.ids), len(r.idOf), n)
	}
	for i := range keys {
		k := fmt.Sprintf("k%02d", i)
		if want := (n - i + keys - 1) / keys; r.next[k] != want {
			t.Errorf("key %s: delivered up to seq %d, want %d", k, r.next[k]-1, want-1)
		}
	}
}

// TestSinkE2EKilledDuringDelivery: a files_poll connector puts 100,000
// events of 50 keys on the stream and an http sink delivers them to a
// receiver that counts per id. The sidecar is killed with SIGKILL while
// the sink delivers, then started again: every event reaches the
// receiver, a duplicate always carries the id the event had before, and
// the events of each key arrive in order, one at a time. (On the embedded
// stream the restarted sidecar waits for the killed one's consumer group
// lease to expire, 15 s, before the sink reads again.)
func TestSinkE2EKilledDuringDelivery(t *testing.T) {
	const n, keys = 100_000, 50
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		rcv := newCountingReceiver(t)
		inbox := writeCounts(t, e.dir, n, keys)
		name := e.name("counts")
		file := e.write(fmt.Sprintf(countedConnector, inbox), fmt.Sprintf(`  - name: %s
    type: http
    events: [com.example.seq.counted]
    retry: {schedule: [100ms, 200ms, 500ms, 1s]}
    config: {url: %q, timeout: 10s}
`, name, rcv.URL+"/counts"))
		began := time.Now()
		p := e.start(file)
		eventually(t, p, 60*time.Second, "a fifth of the events delivered", func() (bool, string) {
			ids, _ := rcv.counts()
			return ids >= n/5, fmt.Sprint(ids, " delivered")
		})
		kill9(t, p)
		atKill, _ := rcv.counts()
		if atKill >= n {
			t.Fatalf("every event was delivered before the kill; it has to come during the delivery")
		}
		killed := time.Now()
		p = e.start(file)
		eventually(t, p, 90*time.Second, "every event delivered after the restart", func() (bool, string) {
			ids, _ := rcv.counts()
			return ids == n, fmt.Sprint(ids, " delivered")
		})
		e.waitSink(p, name, "committed all", 30*time.Second, func(s sinkStatusE2E) bool { return s.Lag == 0 })
		rcv.check(t, n, keys)
		_, requests := rcv.counts()
		t.Logf("%d events: %d delivered before the kill (%s in), all %s after it; %d requests, %d duplicates",
			n, atKill, killed.Sub(began).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), requests, requests-n)
	})
}

// searchAudit runs `tributary events search -c file --json` with args and
// returns the events printed.
func searchAudit(t *testing.T, file string, args ...string) []loggedEvent {
	t.Helper()
	cmd := exec.Command(tributaryBinary(t), append([]string{"events", "search", "-c", file, "--json"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("events search %v: %v\n%s", args, err, stderr.String())
	}
	var evs []loggedEvent
	for line := range strings.Lines(string(out)) {
		var ev loggedEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("events search printed %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// loggedEvent is the part of an event `events search --json` prints that
// the tests read.
type loggedEvent struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Subject string `json:"subject"`
	Data    struct {
		Key string `json:"key"`
		Seq int    `json:"seq"`
	} `json:"data"`
}

// TestSinkE2EAuditLogsEveryEventOnce: an audit sink logs 20,000 events of
// a files_poll connector and two webhook deliveries. The sidecar is killed
// with SIGKILL while it logs, so that events come again after the restart;
// `tributary events search` through the binary then finds every event
// exactly once, and its filters select exactly the matching ones.
func TestSinkE2EAuditLogsEveryEventOnce(t *testing.T) {
	const n, keys = 20_000, 20
	forEachStream(t, func(t *testing.T, e *sinkE2E) {
		inbox := writeCounts(t, e.dir, n, keys)
		name := e.name("audit_log")
		file := e.write(fmt.Sprintf(countedConnector, inbox), fmt.Sprintf("  - {name: %s, type: audit}\n", name))
		began := time.Now()
		p := e.start(file)
		postEvents(t, e.hook, "A/1", "B/1")
		e.waitSink(p, name, "logging", 60*time.Second, func(s sinkStatusE2E) bool { return s.Delivered >= n/4 })
		kill9(t, p)
		killed := time.Now()
		atKill := len(searchAudit(t, file, "--limit", "0"))
		if atKill >= n+2 {
			t.Fatalf("the log held all %d events before the kill; it has to come while the sink logs", atKill)
		}
		p = e.start(file)
		restarted := time.Now()

		var evs []loggedEvent
		deadline := time.Now().Add(60 * time.Second)
		for {
			evs = searchAudit(t, file, "--limit", "0")
			if len(evs) >= n+2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log holds %d events, want %d\nsidecar log:\n%s", len(evs), n+2, p.logs)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("%d events logged before the kill (%s in); restarted in %s, all logged %s after",
			atKill, killed.Sub(began).Round(time.Millisecond), restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		e.waitSink(p, name, "committed all", 30*time.Second, func(s sinkStatusE2E) bool { return s.Lag == 0 })
		evs = searchAudit(t, file, "--limit", "0")
		ids, pairs := map[string]int{}, map[string]int{}
		for _, ev := range evs {
			ids[ev.ID]++
			if ev.Type == "com.example.seq.counted" {
				pairs[fmt.Sprintf("%s/%d", ev.Data.Key, ev.Data.Seq)]++
			}
		}
		if len(evs) != n+2 || len(ids) != n+2 || len(pairs) != n {
			t.Errorf("the log holds %d events of %d ids, %d (key, seq) pairs; want %d events, each id and pair once", len(evs), len(ids), len(pairs), n+2)
		}
		for _, l := range []string{"A/1", "B/1"} {
			if ids[eventID(l)] != 1 {
				t.Errorf("the log holds the event of %s %d times, want once", l, ids[eventID(l)])
			}
		}

		byKey := searchAudit(t, file, "--limit", "0", "--subject", "k03")
		for _, ev := range byKey {
			if ev.Subject != "k03" {
				t.Errorf("--subject k03 found an event of subject %q", ev.Subject)
				break
			}
		}
		if len(byKey) != n/keys {
			t.Errorf("--subject k03 found %d events, want %d", len(byKey), n/keys)
		}
		if got := searchAudit(t, file, "--type", "com.example.order.placed"); len(got) != 2 || got[0].Type != "com.example.order.placed" {
			t.Errorf("--type com.example.order.placed found %+v, want the two webhook events", got)
		}
		if got := searchAudit(t, file, "--id", eventID("B/1")); len(got) != 1 || got[0].Subject != "B" {
			t.Errorf("--id of B/1's event found %+v, want that one event", got)
		}
	})
}
