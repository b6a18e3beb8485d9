package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tributary/tributary/config"
)

// TestDebugEndpoints: Go's profiles are served under /debug/pprof/ only
// when admin.debug is set, and then to loopback clients and operator
// tokens only.
func TestDebugEndpoints(t *testing.T) {
	tokens := []config.AdminToken{
		{Name: "dashboard", Role: config.RoleRead, Token: "read-token-0123456789"},
		{Name: "ops", Role: config.RoleOperator, Token: "operator-token-0123456789"},
	}
	tests := []struct {
		name   string
		debug  bool
		tokens []config.AdminToken
		remote string
		auth   string
		want   int
	}{
		{name: "off", remote: "127.0.0.1:1", want: http.StatusNotFound},
		{name: "loopback", debug: true, remote: "127.0.0.1:1", want: http.StatusOK},
		{name: "from afar without tokens", debug: true, remote: "192.0.2.1:5", want: http.StatusForbidden},
		{name: "read token", debug: true, tokens: tokens, remote: "192.0.2.1:5", auth: "Bearer read-token-0123456789", want: http.StatusForbidden},
		{name: "operator token", debug: true, tokens: tokens, remote: "192.0.2.1:5", auth: "Bearer operator-token-0123456789", want: http.StatusOK},
		{name: "no token", debug: true, tokens: tokens, remote: "127.0.0.1:1", want: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.AdminConfig{Debug: tt.debug, Tokens: tt.tokens}
			sc := &Sidecar{Config: &config.Config{Admin: cfg}}
			mux := http.NewServeMux()
			sc.debugEndpoints(mux)
			h := newAdminAuth(cfg, mux)
			req := httptest.NewRequest("GET", "/debug/pprof/heap?debug=1", nil)
			req.RemoteAddr = tt.remote
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET /debug/pprof/heap answered %d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want == http.StatusOK && !strings.Contains(rec.Body.String(), "heap profile") {
				t.Fatalf("GET /debug/pprof/heap?debug=1 answered %.200q, want the heap profile", rec.Body)
			}
		})
	}
}
