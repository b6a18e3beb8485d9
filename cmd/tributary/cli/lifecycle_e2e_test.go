package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/config"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/lifecycle"
)

// lifecycleE2EConfig: two webhook connectors report on the same orders,
// the ERP (accepted, shipped) and billing (billed), each event with the
// time the payload says; the order entity follows them.
const lifecycleE2EConfig = `
version: 1
state_dir: %s
log: {level: warn}
admin: {address: %s}
http: {address: %s}
shutdown: {timeout: 10s}
%s
catalog:
  - {type: com.example.order.accepted, version: "1", schema: {type: object}}
  - {type: com.example.order.billed, version: "1", schema: {type: object}}
  - {type: com.example.order.shipped, version: "1", schema: {type: object}}
entities:
  order:
    initial: accepted
    final: [shipped]
    window: %s
    states:
      accepted: {}
      billed: {within: 3s}
      shipped: {}
    transitions:
      com.example.order.accepted: {to: accepted}
      com.example.order.billed: {from: [accepted], to: billed, id: event.data.order}
      com.example.order.shipped: {from: [billed], to: shipped}
connectors:
  - name: erp
    type: webhook
    config:
      path: /hooks/erp
      verify: {preset: hmac, header: X-Signature, prefix: "sha256=", secrets: [s3cret]}
      dedup: {header: X-Delivery-Id}
    emit:
      - {name: accepted, when: 'payload.kind == "accepted"', type: com.example.order.accepted, subject: payload.id, partition_key: payload.id, time: payload.at, data: {order: payload.id}}
      - {name: shipped, when: 'payload.kind == "shipped"', type: com.example.order.shipped, subject: payload.id, partition_key: payload.id, time: payload.at, data: {order: payload.id}}
  - name: billing
    type: webhook
    config:
      path: /hooks/billing
      verify: {preset: hmac, header: X-Signature, prefix: "sha256=", secrets: [s3cret]}
      dedup: {header: X-Delivery-Id}
    emit:
      - {name: billed, type: com.example.order.billed, subject: '"invoice-" + payload.id', partition_key: payload.id, time: payload.at, data: {order: payload.id}}
`

type lifecycleE2E struct {
	*sinkE2E
	file string
}

func (e *lifecycleE2E) report(system, id, kind string, at time.Time) {
	e.t.Helper()
	body := fmt.Sprintf(`{"id":%q,"kind":%q,"at":%q}`, id, kind, at.UTC().Format(time.RFC3339Nano))
	resp, answer := postRaw(e.t, "http://"+e.http+"/hooks/"+system, system+"-"+id+"-"+kind, body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s %s %s answered %d: %s", system, id, kind, resp.StatusCode, answer)
	}
}

// instance returns GET /v1/entities/order/{id}, its status code and its
// body.
func (e *lifecycleE2E) instance(id string) (lifecycle.Instance, int, string) {
	var in lifecycle.Instance
	resp, err := http.Get("http://" + e.admin + "/v1/entities/order/" + id)
	if err != nil {
		return in, 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &in)
	return in, resp.StatusCode, string(b)
}

func (e *lifecycleE2E) waitState(p *sidecarProcess, id, state string, steps int) lifecycle.Instance {
	e.t.Helper()
	var in lifecycle.Instance
	eventually(e.t, p, 30*time.Second, "order "+id+" "+state, func() (bool, string) {
		var code int
		var body string
		in, code, body = e.instance(id)
		pending := slices.ContainsFunc(in.Timeline, func(s lifecycle.Step) bool { return s.Verdict == "pending" })
		return code == http.StatusOK && in.State == state && len(in.Timeline) == steps && !pending, fmt.Sprintf("%d %s", code, body)
	})
	return in
}

// lifecycleEvents reads the tracker's events from the stream.
func lifecycleEvents(t *testing.T, file string, want int) []*core.Event {
	t.Helper()
	cfg, err := config.Load(file, core.DefaultRegistry)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cfg.Stream.NewStream(core.DefaultRegistry)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := stream.Open(ctx, core.Env{Name: "stream", StateDir: cfg.StateDir}); err != nil {
		t.Fatal(err)
	}
	defer stream.Close(context.Background())
	sub, err := stream.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var out []*core.Event
	for _, typ := range []string{lifecycle.TypeViolation, lifecycle.TypeStuck, lifecycle.TypeResolved} {
		topic := cfg.Stream.Topics.Topic(typ)
		msgs, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
	read:
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					break read
				}
				ev, err := core.EventFromMessage(m)
				m.Ack()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, ev)
			case <-time.After(3 * time.Second):
				break read
			}
		}
	}
	if len(out) < want {
		t.Fatalf("the stream holds %d lifecycle events, want %d", len(out), want)
	}
	return out
}

// TestLifecycleE2E: two systems report on the same orders through two
// connectors; the tracker follows each order, orders the two reports it
// gets out of order within its window, publishes a violation for an
// order shipped before it was billed and one stuck event for an order
// left billed past its limit (resolved once shipped), answers trace and
// the entities API, and, its store deleted, rebuilds every order from
// the stream.
func TestLifecycleE2E(t *testing.T) {
	forEachStream(t, func(t *testing.T, se *sinkE2E) {
		e := &lifecycleE2E{sinkE2E: se}
		e.file = filepath.Join(e.dir, "tributary.yaml")
		// The window must cover how far one topic's consumer can run
		// behind another's: on Kafka, each topic's group takes a few
		// seconds to join at start.
		window := "1s"
		if strings.Contains(e.stream, "kafka") {
			window = "6s"
		}
		doc := fmt.Sprintf(lifecycleE2EConfig, filepath.Join(e.dir, "state"), e.admin, e.http, e.stream, window)
		if err := os.WriteFile(e.file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		p := e.start(e.file)
		t0 := time.Now().Add(-time.Minute)
		// billing reports a moment before the ERP does, about
		// events that happened the other way round.
		e.report("billing", "A-1", "billed", t0.Add(time.Second))
		e.report("erp", "A-1", "accepted", t0)
		e.report("erp", "A-1", "shipped", t0.Add(2*time.Second))
		// B-1: shipped before it was billed.
		e.report("erp", "B-1", "accepted", t0)
		e.report("erp", "B-1", "shipped", t0.Add(time.Second))
		// C-1: billed, then left there.
		e.report("erp", "C-1", "accepted", t0)
		e.report("billing", "C-1", "billed", time.Now())

		a := e.waitState(p, "A-1", "shipped", 3)
		sources := []string{a.Timeline[0].Source, a.Timeline[1].Source, a.Timeline[2].Source}
		if sources[0] != "/tributary/erp" || sources[1] != "/tributary/billing" || a.Timeline[1].Verdict != "ok" || a.Timeline[1].Position == "" {
			t.Errorf("A-1 timeline = %+v", a.Timeline)
		}
		b := e.waitState(p, "B-1", "accepted", 2)
		if b.Timeline[1].Verdict != lifecycle.ReasonUnexpected {
			t.Errorf("B-1 shipped before billed: verdict %q, want %q", b.Timeline[1].Verdict, lifecycle.ReasonUnexpected)
		}
		e.waitState(p, "C-1", "billed", 2)
		eventually(t, p, 30*time.Second, "C-1 reported stuck", func() (bool, string) {
			var list struct{ Instances []lifecycle.Instance }
			code := getJSON(t, "http://"+e.admin+"/v1/entities/order?state=billed&older_than=2s", &list)
			return code == http.StatusOK && len(list.Instances) == 1 && list.Instances[0].ID == "C-1" && list.Instances[0].Stuck, fmt.Sprintf("%d %+v", code, list)
		})
		e.report("erp", "C-1", "shipped", time.Now())
		e.waitState(p, "C-1", "shipped", 3)

		code, out, stderr := runCLI(t, "trace", "order", "A-1", "-c", e.file)
		if code != 0 || !strings.Contains(out, "order A-1: shipped since") || !strings.Contains(out, "/tributary/billing") {
			t.Errorf("trace: exit %d\n%s%s", code, out, stderr)
		}
		stopSidecar(t, p)
		// Without the sidecar, from the files.
		// The heading says how long ago it got there: the timelines are
		// the same.
		code, out2, stderr := runCLI(t, "trace", "order", "A-1", "-c", e.file)
		_, table, _ := strings.Cut(out, "\n")
		if _, table2, _ := strings.Cut(out2, "\n"); code != 0 || !strings.HasPrefix(out2, "order A-1: shipped since") || table2 != table {
			t.Errorf("trace from the files: exit %d\n%s%s\nwant the timeline\n%s", code, out2, stderr, table)
		}

		evs := lifecycleEvents(t, e.file, 3)
		var got []string
		for _, ev := range evs {
			got = append(got, ev.Type+" "+ev.Subject)
		}
		slices.Sort(got)
		want := []string{lifecycle.TypeResolved + " C-1", lifecycle.TypeStuck + " C-1", lifecycle.TypeViolation + " B-1"}
		if !slices.Equal(got, want) {
			t.Errorf("lifecycle events on the stream = %v, want %v", got, want)
		}

		// The store lost: a new one reads the stream again and ends where
		// the first did, with no new violation or stuck event.
		if err := os.RemoveAll(filepath.Join(e.dir, "state", "lifecycle")); err != nil {
			t.Fatal(err)
		}
		p = e.start(e.file)
		a2 := e.waitState(p, "A-1", "shipped", 3)
		if a2.Timeline[1].EventID != a.Timeline[1].EventID {
			t.Errorf("rebuilt A-1 timeline = %+v, want %+v", a2.Timeline, a.Timeline)
		}
		e.waitState(p, "B-1", "accepted", 2)
		e.waitState(p, "C-1", "shipped", 3)
		stopSidecar(t, p)
		// What the rebuild publishes again carries the ids it had, so
		// consumers drop it as a duplicate.
		ids := map[string]bool{}
		for _, ev := range evs {
			ids[ev.ID] = true
		}
		for _, ev := range lifecycleEvents(t, e.file, 3) {
			if !ids[ev.ID] {
				t.Errorf("after the rebuild: a new %s %s (id %s), want only the ids published before", ev.Type, ev.Subject, ev.ID)
			}
		}
	})
}

// stopSidecar stops p with SIGINT and waits for it.
func stopSidecar(t *testing.T, p *sidecarProcess) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the sidecar did not stop\n%s", p.logs)
	}
	p.done <- nil
}
