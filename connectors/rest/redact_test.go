package rest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	connector "github.com/tributary/tributary/connectors/rest"
	"github.com/tributary/tributary/core"
)

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestErrorsHideSecrets: a failed run's error names the endpoint and the
// query parameters, but none of the secrets: not the user info of the URL
// (net/http's own error quotes it), not the api_key in the query, not a
// secret the API quotes back in its answer.
func TestErrorsHideSecrets(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	dead := deadAddr(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "no access for %s", r.URL.RequestURI())
	}))
	t.Cleanup(echo.Close)
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
	untrusted.StartTLS()
	t.Cleanup(untrusted.Close)

	tests := []struct {
		name string
		url  string
		auth map[string]any
		// want are parts the error must show.
		want []string
		// hide are parts it must not show, besides the secret.
		hide []string
	}{
		{
			name: "unreachable, user info and api_key in the query",
			url:  "http://apiuser:" + secret + "@" + dead + "/api/invoices",
			auth: map[string]any{"type": "api_key", "query_param": "api_key", "key": secret},
			want: []string{dead + "/api/invoices", "api_key=REDACTED", "page=1", "connection refused"},
			hide: []string{"apiuser"},
		},
		{
			name: "refused, the answer quotes the api_key",
			url:  echo.URL + "/api/invoices",
			auth: map[string]any{"type": "api_key", "query_param": "api_key", "key": secret},
			want: []string{"status 401", "no access for /api/invoices?api_key=REDACTED"},
		},
		{
			name: "untrusted certificate",
			url:  "https://apiuser:" + secret + "@" + strings.TrimPrefix(untrusted.URL, "https://") + "/api/invoices",
			auth: map[string]any{"type": "bearer", "token": secret},
			want: []string{"/api/invoices", "certificate"},
			hide: []string{"apiuser"},
		},
		{
			name: "oauth2 token endpoint unreachable",
			url:  echo.URL + "/api/invoices",
			auth: map[string]any{"type": "oauth2", "token_url": "http://tributary:" + secret + "@" + dead + "/token?client_secret=" + secret, "client_id": "tributary", "client_secret": secret},
			want: []string{dead + "/token", "client_secret=REDACTED"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := cursorValues(tt.url)
			v["auth"] = tt.auth
			v["retries"] = 1
			v["pagination"] = map[string]any{"type": "page", "size_param": "size", "size": 2}
			s := newSource(t, v)
			open(t, s, testEnv(t), core.Position{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := s.Read(ctx)
			if err == nil {
				t.Fatal("Read() = nil error, want the failed run's")
			}
			msg := err.Error()
			for _, h := range append(tt.hide, secret) {
				if strings.Contains(msg, h) {
					t.Errorf("the error shows %q: %s", h, msg)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error lacks %q: %s", w, msg)
				}
			}
			if st := fmt.Sprint(s.Status()); strings.Contains(st, secret) || strings.Contains(st, "apiuser") {
				t.Errorf("the status shows a secret: %s", st)
			}
		})
	}
}

// TestInvalidURLHidesUserInfo: a URL that is not http or https is quoted
// without its user info and query.
func TestInvalidURLHidesUserInfo(t *testing.T) {
	const secret = "s3cr3t-VALUE-42"
	v := cursorValues("ftp://apiuser:" + secret + "@files.example.com/export?key=" + secret)
	err := connector.New().Configure(core.NewConfig("api", v))
	if err == nil {
		t.Fatal("Configure() = nil, want the url refused")
	}
	if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, "apiuser") || !strings.Contains(msg, "ftp://files.example.com/export") {
		t.Fatalf("Configure() = %s, want the URL quoted without user info and query", msg)
	}
}
