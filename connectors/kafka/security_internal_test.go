package kafka

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTokenProvider checks each OAUTHBEARER token source: a fixed token,
// a token file read again at each connection, and the client credentials
// grant, whose token is kept until it expires and whose refusal names the
// endpoint's answer but not the secret.
func TestTokenProvider(t *testing.T) {
	var asked atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		id, secret, _ := r.BasicAuth()
		if r.FormValue("grant_type") != "client_credentials" || id != "client" || secret != "s3cret" || r.FormValue("scope") != "kafka" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"from-idp","token_type":"Bearer","expires_in":3600}`))
	}))
	defer idp.Close()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("static", func(t *testing.T) {
		tok, err := newTokenProvider(&SASLConfig{Token: "fixed", Extensions: map[string]string{"logicalCluster": "lkc-1"}}).Token()
		if err != nil || tok.Token != "fixed" || tok.Extensions["logicalCluster"] != "lkc-1" {
			t.Fatalf("token = %+v, %v", tok, err)
		}
	})
	t.Run("file read again", func(t *testing.T) {
		p := newTokenProvider(&SASLConfig{TokenFile: file})
		for _, want := range []string{"first", "second"} {
			if err := os.WriteFile(file, []byte(want+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if tok, err := p.Token(); err != nil || tok.Token != want {
				t.Fatalf("token = %+v, %v; want %s", tok, err, want)
			}
		}
	})
	t.Run("client credentials kept", func(t *testing.T) {
		asked.Store(0)
		p := newTokenProvider(&SASLConfig{TokenURL: idp.URL, ClientID: "client", ClientSecret: "s3cret", Scopes: []string{"kafka"}})
		for range 3 {
			if tok, err := p.Token(); err != nil || tok.Token != "from-idp" {
				t.Fatalf("token = %+v, %v", tok, err)
			}
		}
		if n := asked.Load(); n != 1 {
			t.Fatalf("asked the endpoint %d times for a token valid an hour", n)
		}
	})
	t.Run("client credentials refused", func(t *testing.T) {
		p := newTokenProvider(&SASLConfig{TokenURL: idp.URL, ClientID: "client", ClientSecret: "wrong-s3cret", Scopes: []string{"kafka"}})
		_, err := p.Token()
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "client_secret") || strings.Contains(err.Error(), "wrong-s3cret") {
			t.Fatalf("error %v: want the endpoint's 401, the keys to check, and no secret", err)
		}
	})
}
