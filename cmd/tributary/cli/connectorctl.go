package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tributary/tributary/core/runtime"
)

// connectorControlEndpoints serves POST /v1/connectors/{name}/pause and
// /resume (operators, or loopback without tokens) and GET
// /v1/sinks/{name}/offsets.
func (sc *Sidecar) connectorControlEndpoints(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/connectors/{name}/pause", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "pause") {
			return
		}
		name := r.PathValue("name")
		// A pause waits for the session to drain: what it read reaches
		// the stream and is committed. The drain is bounded by the
		// runtime; the answer by this.
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		err := sc.Runtime.PauseConnector(ctx, name)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			writeConnectorError(w, err)
			return
		}
		sc.Logger.Info("connector paused on request", "connector", name, "by", actor(r))
		if err != nil {
			writeJSON(w, http.StatusAccepted, map[string]string{"status": "pausing", "connector": name})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": runtime.StatePaused, "connector": name})
	})
	mux.HandleFunc("POST /v1/connectors/{name}/resume", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "resume") {
			return
		}
		name := r.PathValue("name")
		if err := sc.Runtime.ResumeConnector(name); err != nil {
			writeConnectorError(w, err)
			return
		}
		sc.Logger.Info("connector resumed on request", "connector", name, "by", actor(r))
		writeJSON(w, http.StatusOK, map[string]string{"status": "resumed", "connector": name})
	})
	mux.HandleFunc("GET /v1/sinks/{name}/offsets", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		offs, err := sc.Runtime.SinkOffsets(r.Context(), name)
		switch {
		case errors.Is(err, runtime.ErrNoSink):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case errors.Is(err, runtime.ErrNoOffsets):
			writeJSON(w, http.StatusNotImplemented, map[string]any{
				"error":  fmt.Sprintf("%v; the %s stream does not implement runtime.GroupOffsets, so only the group and its topics are known (GET /v1/sinks/%s shows the lag)", err, sc.Config.Stream.Type, name),
				"sink":   offs.Sink,
				"group":  offs.Group,
				"topics": offs.Topics,
			})
		case err != nil:
			writeError(w, err)
		default:
			writeJSON(w, http.StatusOK, offs)
		}
	})
}

// writeConnectorError answers 404 for an unknown connector and 409
// otherwise (a disabled one).
func writeConnectorError(w http.ResponseWriter, err error) {
	code := http.StatusConflict
	if errors.Is(err, runtime.ErrNoConnector) {
		code = http.StatusNotFound
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// checkpointJSON is a value in the log as JSON.
func checkpointJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
