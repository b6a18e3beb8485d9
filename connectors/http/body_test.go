package http_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
)

var update = flag.Bool("update", false, "rewrite the expected requests in testdata/requests")

// TestRequestsGolden: the request each body mode sends for one event,
// headers and body, against testdata/requests/<case>.http. A case's
// configuration is testdata/requests/<case>.json; the event is
// testdata/event.json, its mapped data testdata/mapped.json. Adding a
// configuration adds a case; -update rewrites the expectations.
func TestRequestsGolden(t *testing.T) {
	ev := readEvent(t, "testdata/event.json")
	var mapped any
	readJSON(t, "testdata/mapped.json", &mapped)
	configs, err := filepath.Glob("testdata/requests/*.json")
	if err != nil || len(configs) == 0 {
		t.Fatalf("no cases in testdata/requests: %v", err)
	}
	for _, cfgFile := range configs {
		name := strings.TrimSuffix(filepath.Base(cfgFile), ".json")
		t.Run(name, func(t *testing.T) {
			var values map[string]any
			readJSON(t, cfgFile, &values)
			rc := newReceiver(t, nil)
			values["url"] = strings.Replace(values["url"].(string), "http://receiver", rc.URL, 1)
			clock := func() time.Time { return time.Unix(1740832200, 0) }
			s := openWith(t, sink.NewWithClock(clock), values)
			d := core.Delivery{Event: ev}
			if values["body"] == "mapped" {
				d.Data = mapped
			}
			if r := writeWithin(t, s, context.Background(), []core.Delivery{d})[0]; r.Status != core.StatusDelivered {
				t.Fatalf("result = %+v", r)
			}
			got := render(rc.requests()[0])
			want := filepath.Join("testdata/requests", name+".http")
			if *update {
				if err := os.WriteFile(want, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(b) {
				t.Errorf("request differs from %s:\n--- got\n%s\n--- want\n%s", want, got, b)
			}
		})
	}
}

// render writes a received request as text: request line, headers sorted
// (those the Go client adds on its own left out), blank line, body.
func render(r received) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", r.Method, r.URI)
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		if name != "Accept-Encoding" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(r.Header[name], ", "))
	}
	b.WriteString("\n")
	b.Write(r.Body)
	b.WriteString("\n")
	return b.String()
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func readEvent(t *testing.T, file string) *core.Event {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ev core.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &ev
}

// TestBodyModes: what each body mode puts in the request, read back as a
// receiver would.
func TestBodyModes(t *testing.T) {
	ev := event("e-1", "A-1", map[string]any{"order_id": "A-1", "total": json.Number("12345678901234567890.5")})
	ev.Subject = "orders/A-1 ünïcode"
	ev.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev.TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	t.Run("cloudevent", func(t *testing.T) {
		rc := newReceiver(t, nil)
		s := open(t, map[string]any{"url": rc.URL})
		writeWithin(t, s, context.Background(), deliveries(ev))
		got := rc.requests()[0]
		if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Errorf("Content-Type = %q", ct)
		}
		var back core.Event
		if err := json.Unmarshal(got.Body, &back); err != nil {
			t.Fatalf("body is not a CloudEvent: %v\n%s", err, got.Body)
		}
		if back.ID != ev.ID || back.Type != ev.Type || back.Subject != ev.Subject || !back.Time.Equal(ev.Time) || back.PartitionKey != ev.PartitionKey ||
			back.TraceParent != ev.TraceParent || back.TraceState != ev.TraceState || string(back.Data) != string(ev.Data) {
			t.Errorf("event read back = %+v, want %+v", back, ev)
		}
		if got.Header.Get("Traceparent") != ev.TraceParent || got.Header.Get("Tracestate") != ev.TraceState {
			t.Errorf("traceparent = %q, tracestate = %q", got.Header.Get("Traceparent"), got.Header.Get("Tracestate"))
		}
	})
	t.Run("binary", func(t *testing.T) {
		rc := newReceiver(t, nil)
		s := open(t, map[string]any{"url": rc.URL, "body": "binary"})
		writeWithin(t, s, context.Background(), deliveries(ev))
		got := rc.requests()[0]
		if string(got.Body) != string(ev.Data) {
			t.Errorf("body = %s, want the event's data %s", got.Body, ev.Data)
		}
		want := map[string]string{
			"Content-Type": "application/json", "Ce-Id": "e-1", "Ce-Specversion": "1.0",
			"Ce-Source": ev.Source, "Ce-Type": ev.Type, "Ce-Time": "2025-03-01T12:30:00Z",
			"Ce-Partitionkey": "A-1", "Traceparent": ev.TraceParent, "Tracestate": ev.TraceState,
			"Ce-Traceparent": "", "Ce-Tracestate": "",
		}
		for k, v := range want {
			if got.Header.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, got.Header.Get(k), v)
			}
		}
		subject, err := url.PathUnescape(got.Header.Get("Ce-Subject"))
		if err != nil || subject != ev.Subject || strings.ContainsAny(got.Header.Get("Ce-Subject"), " ü") {
			t.Errorf("ce-subject = %q, want %q percent-encoded", got.Header.Get("Ce-Subject"), ev.Subject)
		}
	})
	t.Run("mapped", func(t *testing.T) {
		rc := newReceiver(t, nil)
		s := open(t, map[string]any{"url": rc.URL, "body": "mapped"})
		ds := deliveries(ev, event("e-2", "A-1", map[string]any{"raw": true})) // one key: in order
		ds[0].Data = map[string]any{"order_no": "A-1", "amount": json.Number("12345678901234567890.5"), "lines": []any{map[string]any{"sku": "S-1"}}}
		writeWithin(t, s, context.Background(), ds)
		got := rc.requests()
		if len(got) != 2 {
			t.Fatalf("%d requests", len(got))
		}
		if want := `{"amount":12345678901234567890.5,"lines":[{"sku":"S-1"}],"order_no":"A-1"}`; string(got[0].Body) != want {
			t.Errorf("mapped body = %s, want %s (numbers exact)", got[0].Body, want)
		}
		if string(got[1].Body) != `{"raw":true}` {
			t.Errorf("body without a map = %s, want the event's data", got[1].Body)
		}
		if ct := got[0].Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if got[0].Header.Get("Ce-Id") != "" {
			t.Error("mapped body sent ce-* headers")
		}
	})
}
