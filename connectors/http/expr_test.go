package http_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
)

// TestURLAndHeaderExpressions: {{ }} parts of url and headers are
// expressions over the event and the sink's name; their text is escaped
// as a path segment before the query and as a query value in it, and goes
// as it is into a header.
func TestURLAndHeaderExpressions(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{
		"url": rc.URL + "/orders/{{ event.data.order_id }}/lines?customer={{ event.data.customer }}&total={{ event.data.total }}&sink={{ sink }}",
		"headers": map[string]any{
			"X-Order":   "order {{ event.data.order_id }} of {{ event.subject }}",
			"X-Type":    "{{ event.type }}",
			"X-Literal": "plain",
		},
	})
	ev := event("e-1", "A/1", map[string]any{"order_id": "A/1 ü?", "customer": "ada & co=1", "total": 12.50})
	if r := writeWithin(t, s, context.Background(), deliveries(ev))[0]; r.Status != core.StatusDelivered {
		t.Fatalf("result = %+v", r)
	}
	got := rc.requests()[0]
	if want := "/orders/A%2F1%20%C3%BC%3F/lines?customer=ada+%26+co%3D1&total=12.5&sink=orders_out"; got.URI != want {
		t.Errorf("request URI = %q, want %q", got.URI, want)
	}
	for k, want := range map[string]string{"X-Order": "order A/1 ü? of A/1", "X-Type": ev.Type, "X-Literal": "plain"} {
		if v := got.Header.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
}

// TestExpressionFailsTheDelivery: an expression that fails on an event
// (a field of a missing object, a list where text goes, a header value
// with a line break) dead-letters that event, naming the key, and leaves
// the other keys alone.
func TestExpressionFailsTheDelivery(t *testing.T) {
	tests := []struct {
		name    string
		values  map[string]any
		data    any
		wantErr string
	}{
		{name: "missing object in url", values: map[string]any{"url": "/o/{{ event.data.customer.id }}"}, data: map[string]any{"order_id": 1}, wantErr: "url"},
		{name: "list in url", values: map[string]any{"url": "/o/{{ event.data.lines }}"}, data: map[string]any{"lines": []any{1, 2}}, wantErr: "list"},
		{name: "deadLetter in header", values: map[string]any{"url": "/o", "headers": map[string]any{"X-Total": `{{ event.data.total > 0 ? string(event.data.total) : deadLetter("negative total") }}`}}, data: map[string]any{"total": -1}, wantErr: "negative total"},
		{name: "line break in header", values: map[string]any{"url": "/o", "headers": map[string]any{"X-Note": "{{ event.data.note }}"}}, data: map[string]any{"note": "a\r\nX-Injected: 1"}, wantErr: "line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			tt.values["url"] = rc.URL + tt.values["url"].(string)
			s := open(t, tt.values)
			rs := writeWithin(t, s, context.Background(), deliveries(event("bad", "a", tt.data), event("good", "b", map[string]any{"customer": map[string]any{"id": 1}, "lines": "l", "total": 1, "note": "ok"})))
			if rs[0].Status != core.StatusFailed || rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), tt.wantErr) {
				t.Errorf("bad event: %+v, want failed saying %q", rs[0], tt.wantErr)
			}
			if rs[1].Status != core.StatusDelivered {
				t.Errorf("good event: %+v", rs[1])
			}
			for _, r := range rc.requests() {
				if r.Header.Get("X-Injected") != "" {
					t.Error("a header was injected")
				}
			}
		})
	}
}

// TestDeadLetterReasonIsKept: errors.As finds the rules engine's
// *DeadLetterError in a delivery that an expression dead-lettered.
func TestDeadLetterReasonIsKept(t *testing.T) {
	rc := newReceiver(t, nil)
	s := open(t, map[string]any{"url": rc.URL + `/{{ deadLetter("no route for " + event.type) }}`})
	r := writeWithin(t, s, context.Background(), deliveries(event("e-1", "a", nil)))[0]
	var dl *rules.DeadLetterError
	if r.Status != core.StatusFailed || !errors.As(r.Err, &dl) || !strings.Contains(dl.Reason, "no route") {
		t.Errorf("result = %+v, want failed with the dead-letter reason", r)
	}
	if len(rc.requests()) != 0 {
		t.Error("a request was sent")
	}
}

// TestURLExpressionsDecideTheHost: an expression may pick the host; a
// value that makes no URL fails the delivery.
func TestURLExpressionsDecideTheHost(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {})
	host := strings.TrimPrefix(rc.URL, "http://")
	s := open(t, map[string]any{"url": "http://{{ event.data.host }}/hooks"})
	rs := writeWithin(t, s, context.Background(), deliveries(
		event("ok", "a", map[string]any{"host": host}),
		event("bad", "b", map[string]any{"host": "bad host"}),
	))
	if rs[0].Status != core.StatusDelivered {
		t.Errorf("good host: %+v", rs[0])
	}
	if rs[1].Status != core.StatusFailed || rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "not a URL") {
		t.Errorf("bad host: %+v, want failed: not a URL", rs[1])
	}
}
