package cli

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary/tributary/core/runtime"
)

// AdminHandler serves /healthz, /readyz, /metrics, /v1/connectors and
// /v1/sinks.
func (sc *Sidecar) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := sc.Runtime.Status()
		code := http.StatusOK
		// not_ready says why the answer is 503; degraded lists what
		// recovers by itself (starting, retrying) without making the
		// sidecar unready.
		notReady, degraded := map[string]string{}, map[string]string{}
		if st.Stream.State != "running" {
			notReady["stream"] = stateText(st.Stream.State, st.Stream.Error)
		}
		for _, c := range st.Connectors {
			switch c.State {
			case runtime.StateRunning, runtime.StateDisabled, runtime.StateStopped, runtime.StatePaused:
			case runtime.StateFailed:
				notReady[c.Name] = stateText(c.State, c.Error)
			case runtime.StateStarting:
				if c.Restarts == 0 && c.Retries == 0 {
					notReady[c.Name] = stateText(c.State, c.Error)
				} else {
					degraded[c.Name] = stateText(c.State, c.Error)
				}
			default:
				degraded[c.Name] = stateText(c.State, c.Error)
			}
		}
		// A failed sink (its target answered 410 Gone, say) waits for an
		// operator, as a failed connector does; the other states recover
		// by themselves or were chosen by one. Sinks are keyed "sink:NAME",
		// apart from connectors of the same name.
		ready := st.Ready
		for _, sk := range st.Sinks {
			switch sk.State {
			case runtime.StateRunning, runtime.StateDisabled, runtime.StateStopped:
			case runtime.StateFailed:
				ready = false
				notReady["sink:"+sk.Name] = stateText(sk.State, sk.Error)
			default:
				degraded["sink:"+sk.Name] = stateText(sk.State, sk.Error)
			}
		}
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "not_ready": notReady, "degraded": degraded})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(sc.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /v1/connectors", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, sc.status())
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
	mux.HandleFunc("POST /v1/connectors/{name}/restart", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "restart") {
			return
		}
		name := r.PathValue("name")
		if err := sc.Runtime.Restart(name); err != nil {
			code := http.StatusConflict
			if errors.Is(err, runtime.ErrNoConnector) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		sc.Logger.Info("connector restart requested", "connector", name, "by", actor(r))
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "restarting", "connector": name})
	})
	// Everything else below /v1/connectors/ belongs to connectors'
	// operator endpoints (core.Env.Admin).
	mux.Handle("/v1/connectors/", sc.AdminRouter)
	sc.sinkEndpoints(mux)
	sc.lifecycleEndpoints(mux)
	sc.checkpointEndpoints(mux)
	sc.connectorControlEndpoints(mux)
	sc.reloadEndpoint(mux)
	sc.deadLetterEndpoints(mux)
	openAPIEndpoint(mux)
	sc.consoleEndpoints(mux)
	sc.debugEndpoints(mux)
	return mux
}

// sinkEndpoints serves GET /v1/sinks, GET /v1/sinks/{name} and, from
// loopback, POST /v1/sinks/{name}/pause, /resume, /restart and /replay
// (replay.go).
func (sc *Sidecar) sinkEndpoints(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/sinks", func(w http.ResponseWriter, _ *http.Request) {
		sinks := sc.Runtime.Status().Sinks
		if sinks == nil {
			sinks = []runtime.SinkStatus{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"sinks": sinks})
	})
	mux.HandleFunc("GET /v1/sinks/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range sc.Runtime.Status().Sinks {
			if s.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, s)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no sink named " + r.PathValue("name")})
	})
	act := func(verb, state string, do func(string) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !loopbackOnly(w, r, verb) {
				return
			}
			name := r.PathValue("name")
			if err := do(name); err != nil {
				code := http.StatusConflict
				if errors.Is(err, runtime.ErrNoSink) {
					code = http.StatusNotFound
				}
				writeJSON(w, code, map[string]string{"error": err.Error()})
				return
			}
			sc.Logger.Info("sink "+verb+" requested", "sink", name, "by", actor(r))
			writeJSON(w, http.StatusOK, map[string]string{"status": state, "sink": name})
		}
	}
	mux.HandleFunc("POST /v1/sinks/{name}/pause", act("pause", runtime.StatePaused, sc.Runtime.PauseSink))
	mux.HandleFunc("POST /v1/sinks/{name}/resume", act("resume", "resumed", sc.Runtime.ResumeSink))
	mux.HandleFunc("POST /v1/sinks/{name}/restart", act("restart", "restarting", sc.Runtime.RestartSink))
	mux.HandleFunc("POST /v1/sinks/{name}/replay", sc.replayHandler)
}

// loopbackOnly answers 403 and returns false unless r may act: it comes
// with an operator token (adminAuth let it through), or, when the admin
// API has no tokens, from a loopback address: acting on a connector or a
// sink is then for the machine the sidecar runs on.
func loopbackOnly(w http.ResponseWriter, r *http.Request, verb string) bool {
	if _, ok := tokenHolder(r); ok || loopback(r.RemoteAddr) {
		return true
	}
	writeJSON(w, http.StatusForbidden, map[string]string{"error": verb + " is accepted from loopback only (127.0.0.1 or ::1) while admin.auth.tokens is empty; call it on the sidecar's host, or configure operator tokens"})
	return false
}

// actor names who asked for an action: the token's holder, or the
// client's address.
func actor(r *http.Request) string {
	if name, ok := tokenHolder(r); ok {
		return "token:" + name
	}
	return r.RemoteAddr
}

func stateText(state, err string) string {
	if err == "" {
		return state
	}
	return state + ": " + err
}

// loopback reports whether addr (host:port) is a loopback address (or
// localhost).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
