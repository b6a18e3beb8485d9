package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/metricstest"
)

const orderYAML = `
order:
  initial: accepted
  final: [shipped]
  window: 2s
  states:
    accepted: {}
    billed: {within: 2h}
    shipped: {}
  transitions:
    com.acme.order.accepted: {to: accepted}
    com.acme.order.billed: {from: [accepted], to: billed}
    com.acme.order.shipped: {from: [billed], to: shipped}
`

func machines(t testing.TB) []*lifecycle.Machine {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(orderYAML), &doc); err != nil {
		t.Fatal(err)
	}
	ents, probs := catalog.ParseEntities(doc.Content[0], catalog.EntityOptions{})
	if len(probs) > 0 {
		t.Fatalf("parse: %+v", probs)
	}
	ms, probs := lifecycle.Compile(ents)
	if len(probs) > 0 {
		t.Fatalf("compile: %+v", probs)
	}
	return ms
}

func TestJudge(t *testing.T) {
	m := machines(t)[0]
	tests := []struct {
		name       string
		exists     bool
		state, typ string
		wantReason string
		wantTo     string
	}{
		{"start", false, "", "com.acme.order.accepted", "", "accepted"},
		{"allowed move", true, "accepted", "com.acme.order.billed", "", "billed"},
		{"shipped before billed", true, "accepted", "com.acme.order.shipped", lifecycle.ReasonUnexpected, "accepted"},
		{"second shipped", true, "shipped", "com.acme.order.shipped", lifecycle.ReasonUnexpected, "shipped"},
		{"unknown id mid-life", false, "", "com.acme.order.billed", lifecycle.ReasonUnknownInstance, "billed"},
		{"started twice", true, "billed", "com.acme.order.accepted", lifecycle.ReasonRestarted, "billed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := m.Judge(tt.exists, tt.state, tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.wantReason || v.To != tt.wantTo {
				t.Errorf("Judge = %+v, want reason %q to %q", v, tt.wantReason, tt.wantTo)
			}
		})
	}
	if _, err := m.Judge(true, "accepted", "com.acme.invoice.issued"); err == nil {
		t.Error("Judge of a type the entity has no transition for: no error")
	}
}

func TestWriteGraph(t *testing.T) {
	m := machines(t)[0]
	tests := []struct {
		name, format string
		want         []string
	}{
		{"dot", lifecycle.FormatDot, []string{`"accepted" -> "billed" [label="com.acme.order.billed"]`, `__start -> "accepted"`, `"shipped" [label="shipped", peripheries=2]`, `within 2h0m0s`}},
		{"mermaid", lifecycle.FormatMermaid, []string{"[*] --> accepted: com.acme.order.accepted", "billed --> shipped: com.acme.order.shipped", "shipped --> [*]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := lifecycle.WriteGraph(&b, m.Entity, tt.format); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ReplaceAll(b.String(), `"__start"`, "__start"), w) {
					t.Errorf("graph lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func (r *recorder) publish(_ context.Context, evs []*core.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, evs...)
	return nil
}

// recorder records what the tracker publishes.
type recorder struct {
	mu     sync.Mutex
	events []*core.Event
}

func (r *recorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type+" "+e.Subject)
	}
	return out
}

var base = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func event(id, typ, subject, source string, at time.Time) core.Delivery {
	return core.Delivery{Event: &core.Event{ID: id, Type: typ, Subject: subject, Source: source, Time: at, PartitionKey: subject, SpecVersion: "1.0"}, Position: "orders/0/" + id}
}

func newTracker(t *testing.T, dir string, clk *clock, rec *recorder) *lifecycle.Tracker {
	t.Helper()
	return newTrackerMetrics(t, dir, clk, rec, nil)
}

func newTrackerMetrics(t *testing.T, dir string, clk *clock, rec *recorder, reg prometheus.Registerer) *lifecycle.Tracker {
	t.Helper()
	tr := lifecycle.New(lifecycle.Config{Machines: machines(t), Dir: dir, Publish: rec.publish, Now: clk.now, Tick: time.Hour, Metrics: reg})
	if err := tr.Open(context.Background(), core.Env{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

func write(t *testing.T, tr *lifecycle.Tracker, ds ...core.Delivery) {
	t.Helper()
	for i, r := range tr.Write(context.Background(), ds) {
		if r.Status != core.StatusDelivered {
			t.Fatalf("delivery %d: %s %v", i, r.Status, r.Err)
		}
	}
}

func TestTrackerWindowOrdersByEventTime(t *testing.T) {
	clk := &clock{t: base}
	rec := &recorder{}
	tr := newTracker(t, t.TempDir(), clk, rec)
	ctx := context.Background()
	// The billing system reports a moment before the order system does,
	// yet its event happened after: within the window they are judged in
	// event-time order, and nothing is violated.
	write(t, tr, event("e2", "com.acme.order.billed", "A-1", "billing", base.Add(time.Second)))
	clk.add(500 * time.Millisecond)
	write(t, tr, event("e1", "com.acme.order.accepted", "A-1", "erp", base))
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := tr.Trace(ctx, "order", "A-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != "" || in.Timeline[0].Verdict != "pending" {
		t.Fatalf("before the window passed: %+v", in)
	}
	clk.add(2 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	in, err = tr.Trace(ctx, "order", "A-1")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != "billed" || len(in.Timeline) != 2 || in.Timeline[0].EventID != "e1" || in.Timeline[1].Verdict != "ok" || in.Timeline[1].Position != "orders/0/e2" {
		t.Errorf("after the window: %+v", in)
	}
	if got := rec.types(); len(got) != 0 {
		t.Errorf("published %v, want nothing", got)
	}
}

func TestTrackerViolationsStuckResolved(t *testing.T) {
	clk := &clock{t: base}
	rec := &recorder{}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	tr := newTrackerMetrics(t, dir, clk, rec, reg)
	ctx := context.Background()
	write(t, tr,
		event("a1", "com.acme.order.accepted", "A-1", "erp", base),
		event("a2", "com.acme.order.shipped", "A-1", "wms", base.Add(time.Minute)), // shipped before billed
		event("b1", "com.acme.order.accepted", "B-1", "erp", base),
		event("b2", "com.acme.order.billed", "B-1", "billing", base.Add(time.Minute)),
	)
	// A redelivery after a crash changes nothing.
	write(t, tr, event("a2", "com.acme.order.shipped", "A-1", "wms", base.Add(time.Minute)))
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got := rec.types()
	if len(got) != 1 || got[0] != lifecycle.TypeViolation+" A-1" {
		t.Fatalf("published %v, want one violation for A-1", got)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.events[0].Data, &v); err != nil {
		t.Fatal(err)
	}
	if v["reason"] != lifecycle.ReasonUnexpected || v["event_id"] != "a2" || v["previous_event_id"] != "a1" || v["actual"].(map[string]any)["from"] != "accepted" {
		t.Errorf("violation data = %v", v)
	}
	// B-1 stays billed past its 2h limit: one stuck event, however often
	// the timer looks.
	clk.add(2*time.Hour + time.Minute)
	for range 3 {
		if err := tr.Step(ctx); err != nil {
			t.Fatal(err)
		}
		clk.add(2 * time.Second)
	}
	got = rec.types()
	if len(got) != 2 || got[1] != lifecycle.TypeStuck+" B-1" {
		t.Fatalf("published %v, want a stuck B-1 after the violation", got)
	}
	if v, _ := metricstest.Value(t, reg, "tributary_lifecycle_violations_total", map[string]string{"entity": "order", "reason": lifecycle.ReasonUnexpected}); v != 1 {
		t.Errorf("tributary_lifecycle_violations_total = %v, want 1", v)
	}
	if v, _ := metricstest.Value(t, reg, "tributary_lifecycle_stuck", map[string]string{"entity": "order", "state": "billed"}); v != 1 {
		t.Errorf("tributary_lifecycle_stuck{state=billed} = %v, want 1", v)
	}
	list, err := tr.List(ctx, lifecycle.Query{Entity: "order", State: "billed", OlderThan: time.Hour})
	if err != nil || len(list) != 1 || list[0].ID != "B-1" || !list[0].Stuck {
		t.Fatalf("List billed older than 1h = %+v, %v", list, err)
	}
	// Shipping it resolves it, also across a restart of the tracker with
	// the event still held.
	write(t, tr, event("b3", "com.acme.order.shipped", "B-1", "wms", clk.now()))
	tr.Close(ctx)
	tr = newTracker(t, dir, clk, rec)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got = rec.types()
	if len(got) != 3 || got[2] != lifecycle.TypeResolved+" B-1" {
		t.Fatalf("published %v, want resolved B-1 last", got)
	}
	in, err := tr.Trace(ctx, "order", "B-1")
	if err != nil || in.State != "shipped" || in.Stuck {
		t.Errorf("B-1 = %+v, %v", in, err)
	}
}

func TestTrackerRefusesEventWithoutID(t *testing.T) {
	clk := &clock{t: base}
	tr := newTracker(t, "", clk, &recorder{})
	res := tr.Write(context.Background(), []core.Delivery{
		event("x1", "com.acme.order.accepted", "", "erp", base),
		event("x2", "com.acme.order.accepted", "C-1", "erp", base),
	})
	if res[0].Status != core.StatusFailed || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "empty") {
		t.Errorf("event without subject: %+v", res[0])
	}
	if res[1].Status != core.StatusDelivered {
		t.Errorf("event of another key: %+v", res[1])
	}
}

func TestTrackerRetention(t *testing.T) {
	clk := &clock{t: base}
	tr := newTracker(t, "", clk, &recorder{})
	ctx := context.Background()
	write(t, tr,
		event("d1", "com.acme.order.accepted", "D-1", "erp", base),
		event("d2", "com.acme.order.billed", "D-1", "billing", base),
		event("d3", "com.acme.order.shipped", "D-1", "wms", base),
		event("e1", "com.acme.order.accepted", "E-1", "erp", base),
	)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	clk.add(catalog.DefaultRetention + time.Hour)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Trace(ctx, "order", "D-1"); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("D-1, shipped longer than the retention ago: %v, want ErrNotFound", err)
	}
	if in, err := tr.Trace(ctx, "order", "E-1"); err != nil || in.State != "accepted" {
		t.Errorf("E-1, not finished: %+v, %v; want it kept", in, err)
	}
}
