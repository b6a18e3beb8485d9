package cli

import (
	"net/http"
	"net/http/pprof"

	"github.com/tributary/tributary/config"
)

// debugEndpoints serves Go's runtime profiles under /debug/pprof/ when
// admin.debug is set: go tool pprof reads them from the running sidecar
// (`go tool pprof http://127.0.0.1:9464/debug/pprof/profile?seconds=10`,
// `.../heap`, `.../allocs`, `curl -o t.out .../trace?seconds=2`). A profile
// shows the sidecar's code paths and, for the heap, where memory was
// allocated; only loopback clients and operator tokens get them, as with
// the admin API's actions.
func (sc *Sidecar) debugEndpoints(mux *http.ServeMux) {
	if !sc.Config.Admin.Debug {
		return
	}
	guard := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !operatorOrLoopback(w, r, "profiles under /debug/pprof/") {
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /debug/pprof/", guard(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", guard(http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", guard(http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", guard(http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", guard(http.HandlerFunc(pprof.Trace)))
}

// operatorOrLoopback lets a request from loopback or with an operator
// token through, and answers 403 otherwise.
func operatorOrLoopback(w http.ResponseWriter, r *http.Request, what string) bool {
	if h, ok := r.Context().Value(holderKey{}).(holder); ok {
		if h.role == config.RoleOperator {
			return true
		}
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "token " + h.name + " has the " + h.role + " role; " + what + " need an operator token"})
		return false
	}
	if loopback(r.RemoteAddr) {
		return true
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": what + " are served to loopback clients (127.0.0.1 or ::1) and operator tokens only"})
	return false
}
