package cli

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tributary/tributary/config"
)

// consoleCookie holds the admin token a console user logged in with.
const consoleCookie = "tributary_token"

// consoleLogin lets a browser use the console when the admin API takes
// bearer tokens: GET /ui/login asks for a token, POST /ui/login checks it
// and keeps it in an HttpOnly, SameSite=Strict cookie, and every request
// that carries the cookie and no Authorization header is authenticated
// with it, with the token's role, by the same check as a bearer token. A
// console page asked for without a valid token is sent to the login
// page. The static files are served without a token: they are the same
// for everyone. Without tokens the console needs no login.
type consoleLogin struct {
	auth http.Handler // the admin API behind adminAuth
	mux  http.Handler // the admin API itself, for the login page and static files
	a    *adminAuth
	log  func(msg string, args ...any)
}

// newConsoleLogin returns the admin listener's handler: mux behind the
// bearer tokens of cfg, and the console's login when there are tokens.
func newConsoleLogin(cfg config.AdminConfig, mux http.Handler, log func(string, ...any)) http.Handler {
	auth := newAdminAuth(cfg, mux)
	a, ok := auth.(*adminAuth)
	if !ok {
		return auth
	}
	return &consoleLogin{auth: auth, mux: mux, a: a, log: log}
}

func (c *consoleLogin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/ui/login" && r.Method == http.MethodPost:
		c.login(w, r)
		return
	case p == "/ui/logout" && r.Method == http.MethodPost:
		http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	case p == "/ui/login" || strings.HasPrefix(p, "/ui/static/"):
		c.mux.ServeHTTP(w, r)
		return
	}
	page := r.Method == http.MethodGet && (p == "/ui" || strings.HasPrefix(p, "/ui/"))
	if r.Header.Get("Authorization") != "" {
		c.auth.ServeHTTP(w, r)
		return
	}
	ck, err := r.Cookie(consoleCookie)
	if err != nil || ck.Value == "" {
		if page {
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		c.auth.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
		// SameSite=Strict keeps the cookie off other sites' requests; a
		// browser's Origin says so again.
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "a request with the console's cookie must come from the console's own origin (" + r.Host + "); send Authorization: Bearer <token> from elsewhere"})
		return
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+ck.Value)
	if _, ok := c.a.authenticate(r2); !ok && page {
		http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	c.auth.ServeHTTP(w, r2)
}

// login checks the posted token and keeps it in the cookie.
func (c *consoleLogin) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "log in from the console's own page, " + r.Host + "/ui/login"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	tok := strings.TrimSpace(r.PostFormValue("token"))
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, "/ui") || strings.HasPrefix(next, "//") {
		next = "/ui"
	}
	probe := r.Clone(r.Context())
	probe.Header.Set("Authorization", "Bearer "+tok)
	h, ok := c.a.authenticate(probe)
	if tok == "" || !ok {
		c.log("console login refused", "from", r.RemoteAddr)
		q := url.Values{"error": {"That token is not one of admin.auth.tokens."}, "next": {next}}
		http.Redirect(w, r, "/ui/login?"+q.Encode(), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: consoleCookie, Value: tok, Path: "/", MaxAge: int((12 * time.Hour).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	c.log("console login", "token", h.name, "role", h.role, "from", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// sameOrigin reports whether r's Origin (or, without one, Referer) is the
// admin listener itself; a request with neither (not from a browser) is
// let through.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// AdminServer returns the admin listener's handler: AdminHandler behind
// the bearer tokens of admin.auth.tokens, with the console's login.
func (sc *Sidecar) AdminServer() http.Handler {
	return newConsoleLogin(sc.Config.Admin, sc.AdminHandler(), sc.Logger.Info)
}
