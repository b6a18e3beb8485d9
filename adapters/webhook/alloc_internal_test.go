package webhook

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestRequestPathAllocations counts the allocations of the request path's
// parts that run once per delivery, so that a change that adds one per
// request shows here rather than only in a benchmark.
func TestRequestPathAllocations(t *testing.T) {
	body := []byte(`{"event":"order.placed","order":{"id":"o-1"}}`)
	req := httptest.NewRequest(http.MethodPost, "/hooks/x", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Delivery-Id", "d-1")
	req.Header.Set("User-Agent", "sender/1")
	w := httptest.NewRecorder()
	rec := &record{id: "d-1", received: time.Now(), body: body, parsed: true, payload: map[string]any{},
		meta: recordMeta{Method: http.MethodPost, Path: "/hooks/x", RemoteAddr: "192.0.2.1:1234", ContentType: "application/json",
			Headers: map[string]any{"Content-Type": "application/json"}}}
	tests := []struct {
		name string
		max  float64
		run  func()
	}{
		// The buffer, and the test's own reader and closer: the body's
		// Content-Length bounds the read without a MaxBytesReader.
		{name: "readBody", max: 3, run: func() {
			req.Body = io.NopCloser(bytes.NewReader(body))
			if _, err := readBody(w, req, 1<<20); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "MediaType", max: 0, run: func() { _ = MediaType("application/json") }},
		{name: "headerMap", max: 3, run: func() { _ = headerMap(req.Header) }},
		// The meta map, its group, the boxed remote address and delivery
		// id, and the position's bytes; the method, the media type and
		// the empty query and path maps are shared.
		{name: "change", max: 5, run: func() { _ = rec.change(nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testing.AllocsPerRun(100, tt.run)
			t.Logf("%s: %v allocations", tt.name, got)
			if got > tt.max {
				t.Errorf("%s allocates %v times per delivery, want at most %v", tt.name, got, tt.max)
			}
		})
	}
}
