package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
)

// The admin API with tokens: open paths without one, reads with any
// role, actions with the operator role only, a wrong or missing token
// refused with a Bearer challenge; the handler learns who acted.
func TestAdminAuth(t *testing.T) {
	var who string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "act") {
			return
		}
		who = actor(r)
		w.WriteHeader(http.StatusOK)
	})
	cfg := config.AdminConfig{
		Tokens: []config.AdminToken{
			{Name: "dashboard", Role: config.RoleRead, Token: "read-token-0123456789"},
			{Name: "ops", Role: config.RoleOperator, Token: "operator-token-0123456789"},
		},
		OpenPaths: []string{"/healthz", "/metrics"},
	}
	h := newAdminAuth(cfg, next)
	tests := []struct {
		name, method, path, auth string
		remote                   string
		want                     int
		who                      string
	}{
		{name: "open path, no token", method: "GET", path: "/healthz", want: 200, remote: "127.0.0.1:1", who: "127.0.0.1:1"},
		{name: "no token", method: "GET", path: "/v1/connectors", want: 401},
		{name: "wrong token", method: "GET", path: "/v1/connectors", auth: "Bearer operator-token-0123456780", want: 401},
		{name: "not bearer", method: "GET", path: "/v1/connectors", auth: "Basic b3BzOnNlY3JldA==", want: 401},
		{name: "read token reads", method: "GET", path: "/v1/connectors", auth: "Bearer read-token-0123456789", want: 200, who: "token:dashboard"},
		{name: "read token may not act", method: "POST", path: "/v1/sinks/out/pause", auth: "Bearer read-token-0123456789", want: 403},
		{name: "operator acts from afar", method: "POST", path: "/v1/sinks/out/pause", auth: "bearer operator-token-0123456789", want: 200, who: "token:ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			who = ""
			req := httptest.NewRequest(tt.method, tt.path, nil)
			req.RemoteAddr = "203.0.113.9:4000"
			if tt.remote != "" {
				req.RemoteAddr = tt.remote
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%s %s answered %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.want)
			}
			if tt.want == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(rec.Body.String(), "token-0123456789") {
				t.Errorf("the answer shows a token: %s", rec.Body)
			}
			if who != tt.who {
				t.Errorf("acted as %q, want %q", who, tt.who)
			}
		})
	}
}

// Without tokens, the API is as before: reads from anywhere the listener
// is reachable, actions from loopback only.
func TestAdminWithoutTokensActsFromLoopbackOnly(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loopbackOnly(w, r, "pause") {
			w.WriteHeader(http.StatusOK)
		}
	})
	h := newAdminAuth(config.AdminConfig{}, next)
	for remote, want := range map[string]int{"127.0.0.1:5": 200, "[::1]:5": 200, "192.0.2.1:5": 403} {
		req := httptest.NewRequest("POST", "/v1/sinks/out/pause", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("from %s: %d, want %d", remote, rec.Code, want)
		}
	}
}
