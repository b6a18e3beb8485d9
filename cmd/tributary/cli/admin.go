package cli

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves /healthz, /readyz, /metrics and /v1/connectors.
func (sc *Sidecar) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := sc.Runtime.Status()
		code := http.StatusOK
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
		notReady := map[string]string{}
		if st.Stream.State != "running" {
			notReady["stream"] = st.Stream.State + ": " + st.Stream.Error
		}
		for _, c := range st.Connectors {
			if c.State != "running" && c.State != "disabled" {
				notReady[c.Name] = c.State + ": " + c.Error
			}
		}
		writeJSON(w, code, map[string]any{"ready": st.Ready, "not_ready": notReady})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(sc.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/connectors", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, sc.Runtime.Status())
	})
	mux.HandleFunc("GET /v1/connectors/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, c := range sc.Runtime.Status().Connectors {
			if c.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, c)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no connector named " + r.PathValue("name")})
	})
	// Everything else below /v1/connectors/ belongs to connectors'
	// operator endpoints (core.Env.Admin).
	mux.Handle("/v1/connectors/", sc.AdminRouter)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
