package http_test

import (
	"context"
	"net/http"
	"testing"
)

// TestAuth: auth.bearer and auth.basic give every request its
// Authorization header.
func TestAuth(t *testing.T) {
	tests := []struct {
		name  string
		auth  map[string]any
		check func(t *testing.T, r *http.Request)
	}{
		{name: "bearer", auth: map[string]any{"bearer": "tok-1"}, check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "Bearer tok-1" {
				t.Errorf("Authorization = %q", got)
			}
		}},
		{name: "basic", auth: map[string]any{"basic": map[string]any{"username": "wms", "password": "p:ss"}}, check: func(t *testing.T, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "wms" || p != "p:ss" {
				t.Errorf("basic credentials = %q, %q, %v", u, p, ok)
			}
		}},
		{name: "none", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Get("Authorization"); got != "" {
				t.Errorf("Authorization = %q without auth", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			values := map[string]any{"url": rc.URL}
			if tt.auth != nil {
				values["auth"] = tt.auth
			}
			s := open(t, values)
			writeWithin(t, s, context.Background(), deliveries(event("e-1", "A-1", nil)))
			got := rc.requests()[0]
			tt.check(t, &http.Request{Header: got.Header})
		})
	}
}
