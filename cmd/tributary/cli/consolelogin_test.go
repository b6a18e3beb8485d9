package cli_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	readToken     = "read-token-0123456789"
	operatorToken = "operator-token-0123456789"
)

// location polls the page's URL until want(url) or 20 s.
func waitLocation(t *testing.T, ctx context.Context, what string, want func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && want(loc) {
			return loc
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the page is at %q (%v)", what, loc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logIn(t *testing.T, ctx context.Context, token string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-button")),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
}

// TestConsoleLoginInBrowser: with admin tokens, the console sends a
// browser without one to its login page; a wrong token is refused; a
// read token shows the pages but its pause is refused; after logging out
// and in with an operator token, the pause button pauses the connector.
// The token is kept in an HttpOnly cookie the page's script cannot read,
// and the API still wants a token from anyone without the cookie.
func TestConsoleLoginInBrowser(t *testing.T) {
	ctx := browser(t)
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	file := e.write("", "")
	b, _ := os.ReadFile(file)
	auth := "admin: {address: " + e.admin + ", auth: {tokens: [{name: alice, role: read, token: " + readToken + "}, {name: bob, role: operator, token: " + operatorToken + "}]}}"
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "admin: {address: "+e.admin+"}", auth, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, file, e.admin)
	ui := "http://" + e.admin + "/ui"

	if err := chromedp.Do(ctx, chromedp.Navigate(ui)); err != nil {
		t.Fatal(err)
	}
	waitLocation(t, ctx, "without a token", func(u string) bool { return strings.HasPrefix(u, ui+"/login") })
	logIn(t, ctx, "not-a-token-at-all-here")
	waitText(t, ctx, "#login-error", "a wrong token", func(s string) bool { return strings.Contains(s, "not one of admin.auth.tokens") })

	logIn(t, ctx, readToken)
	waitLocation(t, ctx, "after logging in", func(u string) bool { return u == ui })
	waitText(t, ctx, `tr[data-connector="shop"] [data-field="state"]`, "the overview with a read token", func(s string) bool { return s == "running" })
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/connectors/shop/pause"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#message", "a read token's pause", func(s string) bool { return strings.Contains(s, "read role") })
	cookies, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.cookie"))
	if err != nil || cookies != "" {
		t.Errorf("the page's script reads the cookies %q (%v), want none: the token's cookie is HttpOnly", cookies, err)
	}

	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	waitLocation(t, ctx, "after logging out", func(u string) bool { return strings.HasPrefix(u, ui+"/login") })
	logIn(t, ctx, operatorToken)
	waitLocation(t, ctx, "after logging in as operator", func(u string) bool { return u == ui })
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`button[data-action="POST /v1/connectors/shop/pause"]`)), chromedp.Click(chromedp.CSS(`button[data-action="POST /v1/connectors/shop/pause"]`))); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-connector="shop"] [data-field="state"]`, "an operator's pause", func(s string) bool { return s == "paused" })

	// Without the cookie, the API still wants a token.
	resp, err := http.Get("http://" + e.admin + "/v1/connectors")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/connectors without a token answered %d, want 401", resp.StatusCode)
	}
}

// TestConsoleLoginCookie checks the cookie the login sets (HttpOnly,
// SameSite=Strict, the whole listener's path), that a login posted from
// another origin is refused, and that the cookie authenticates with its
// token's role.
func TestConsoleLoginCookie(t *testing.T) {
	e := newSinkE2E(t, "stream: {type: embedded}", "")
	file := e.write("", "")
	b, _ := os.ReadFile(file)
	auth := "admin: {address: " + e.admin + ", auth: {tokens: [{name: alice, role: read, token: " + readToken + "}]}}"
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "admin: {address: "+e.admin+"}", auth, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, file, e.admin)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login := func(origin, token string) *http.Response {
		req, _ := http.NewRequest("POST", "http://"+e.admin+"/ui/login", strings.NewReader(url.Values{"token": {token}, "next": {"/ui/catalog"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		name, origin, token string
		wantCode            int
		wantLocation        string
		wantCookie          bool
	}{
		{name: "the right token", origin: "http://" + e.admin, token: readToken, wantCode: 303, wantLocation: "/ui/catalog", wantCookie: true},
		{name: "a wrong token", origin: "http://" + e.admin, token: "nope-nope-nope-nope", wantCode: 303, wantLocation: "/ui/login?"},
		{name: "another origin", origin: "http://evil.example", token: readToken, wantCode: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := login(tt.origin, tt.token)
			if resp.StatusCode != tt.wantCode || !strings.HasPrefix(resp.Header.Get("Location"), tt.wantLocation) {
				t.Fatalf("answered %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "tributary_token" {
					ck = c
				}
			}
			if (ck != nil) != tt.wantCookie {
				t.Fatalf("cookie %v, want one: %v", ck, tt.wantCookie)
			}
			if ck == nil {
				return
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
				t.Errorf("cookie %+v, want HttpOnly, SameSite=Strict, Path=/", ck)
			}
			req, _ := http.NewRequest("GET", "http://"+e.admin+"/v1/connectors", nil)
			req.AddCookie(ck)
			r2, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r2.Body.Close()
			if r2.StatusCode != 200 {
				t.Errorf("GET with the cookie answered %d", r2.StatusCode)
			}
			req, _ = http.NewRequest("POST", "http://"+e.admin+"/v1/connectors/shop/pause", nil)
			req.AddCookie(ck)
			r3, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r3.Body.Close()
			if r3.StatusCode != http.StatusForbidden {
				t.Errorf("a read token's cookie paused a connector: %d", r3.StatusCode)
			}
		})
	}
}
