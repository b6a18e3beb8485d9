package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// checkpointEndpoints serves GET and PUT /v1/connectors/{name}/checkpoint:
// a connector's committed position, read from the stream's checkpoint
// store, and set by an operator. A running connector commits its own
// checkpoints, so a new one is accepted only while the connector does not
// run (failed, stopped or disabled); POST .../restart then resumes from it.
func (sc *Sidecar) checkpointEndpoints(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/connectors/{name}/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if _, ok := sc.connectorStatus(name); !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no connector named " + name})
			return
		}
		cp, ok, err := sc.loadCheckpoint(r, name)
		if err != nil {
			writeError(w, err)
			return
		}
		if !ok {
			writeJSON(w, http.StatusOK, map[string]any{"connector": name, "checkpoint": nil})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"connector": name, "checkpoint": cp})
	})
	mux.HandleFunc("PUT /v1/connectors/{name}/checkpoint", func(w http.ResponseWriter, r *http.Request) {
		if !loopbackOnly(w, r, "setting a checkpoint") {
			return
		}
		name := r.PathValue("name")
		st, ok := sc.connectorStatus(name)
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no connector named " + name})
			return
		}
		var req struct {
			Position *core.Position `json:"position"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Position == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(`checkpoint body: %v; send {"position": {"v": VERSION, "d": "BASE64"}} as GET /v1/connectors/%s/checkpoint shows it`, errOrMissing(err), name)})
			return
		}
		switch st.State {
		case runtime.StateFailed, runtime.StateStopped, runtime.StateDisabled:
		default:
			writeJSON(w, http.StatusConflict, map[string]string{"error": fmt.Sprintf("connector %q is %s and commits its own checkpoints; a checkpoint can be set while it is failed, stopped or disabled (set disabled: true in the configuration and restart the sidecar)", name, st.State)})
			return
		}
		old, hadOld, err := sc.loadCheckpoint(r, name)
		if err != nil {
			writeError(w, err)
			return
		}
		cp := core.Checkpoint{Format: core.CheckpointFormat, Connector: name, Position: *req.Position, Time: time.Now().UTC()}
		if err := sc.Stream.Checkpoints().Save(r.Context(), cp); err != nil {
			writeError(w, fmt.Errorf("save checkpoint of connector %q: %w", name, err))
			return
		}
		var prev any
		if hadOld {
			prev = old
		}
		oldJSON, _ := json.Marshal(prev)
		newJSON, _ := json.Marshal(cp.Position)
		sc.Logger.Info("connector checkpoint set", "connector", name, "old", string(oldJSON), "new", string(newJSON), "by", actor(r))
		writeJSON(w, http.StatusOK, map[string]any{"connector": name, "checkpoint": cp, "old": prev})
	})
}

func errOrMissing(err error) error {
	if err == nil {
		return errors.New("position is missing")
	}
	return err
}

func (sc *Sidecar) connectorStatus(name string) (runtime.ConnectorStatus, bool) {
	for _, c := range sc.Runtime.Status().Connectors {
		if c.Name == name {
			return c, true
		}
	}
	return runtime.ConnectorStatus{}, false
}

func (sc *Sidecar) loadCheckpoint(r *http.Request, name string) (core.Checkpoint, bool, error) {
	if sc.Stream == nil || sc.Runtime.Status().Stream.State != runtime.StateRunning {
		return core.Checkpoint{}, false, errStreamDown
	}
	cp, ok, err := sc.Stream.Checkpoints().Load(r.Context(), name)
	if err != nil {
		return cp, false, fmt.Errorf("load checkpoint of connector %q: %w", name, err)
	}
	return cp, ok, nil
}
