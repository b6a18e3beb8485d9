package cli

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tributary/tributary/config"
)

// adminAuth guards the admin API with the bearer tokens of
// admin.auth.tokens. Without tokens it leaves every request to the
// handlers (which accept actions from loopback only). With tokens, a
// request to a path outside open_paths needs a token: GET and HEAD any
// role, other methods the operator role. Tokens are compared as SHA-256
// digests in constant time, and never logged.
type adminAuth struct {
	next   http.Handler
	open   []string
	tokens []adminToken
}

type adminToken struct {
	name, role string
	digest     [sha256.Size]byte
}

func newAdminAuth(cfg config.AdminConfig, next http.Handler) http.Handler {
	if len(cfg.Tokens) == 0 {
		return next
	}
	a := &adminAuth{next: next, open: cfg.OpenPaths}
	for _, t := range cfg.Tokens {
		a.tokens = append(a.tokens, adminToken{name: t.Name, role: t.Role, digest: sha256.Sum256([]byte(t.Token))})
	}
	return a
}

// holder is the token holder a request authenticated as, in its context.
type holder struct{ name, role string }

func (a *adminAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if slices.Contains(a.open, r.URL.Path) {
		a.next.ServeHTTP(w, r)
		return
	}
	h, ok := a.authenticate(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tributary admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "this admin API needs a bearer token: send Authorization: Bearer <token> with a token of admin.auth.tokens"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && h.role != config.RoleOperator {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("token %q has the %s role, which may only read; %s %s needs an operator token", h.name, h.role, r.Method, r.URL.Path)})
		return
	}
	a.next.ServeHTTP(w, r.WithContext(withHolder(r.Context(), h)))
}

// authenticate returns the holder of the request's bearer token. Every
// configured token is compared, so that the time taken does not tell
// which one, or whether any, matched.
func (a *adminAuth) authenticate(r *http.Request) (holder, bool) {
	v := r.Header.Get("Authorization")
	scheme, tok, found := strings.Cut(v, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return holder{}, false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	var match holder
	ok := 0
	for _, t := range a.tokens {
		if subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1 {
			match, ok = holder{t.name, t.role}, 1
		}
	}
	return match, ok == 1
}

type holderKey struct{}

func withHolder(ctx context.Context, h holder) context.Context {
	return context.WithValue(ctx, holderKey{}, h)
}

// tokenHolder returns the name of the token holder r authenticated as.
func tokenHolder(r *http.Request) (string, bool) {
	h, ok := r.Context().Value(holderKey{}).(holder)
	return h.name, ok
}
