package cli

import (
	"context"
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
// store, and set by an operator. A running connector is paused for it
// (what it read is committed first), the new position stored, and it
// resumes from there (runtime.SetCheckpoint); a failed, paused or
// disabled one only has its checkpoint stored, and POST .../restart or
// .../resume then starts it from there. The old checkpoint is in the
// answer and the log, with who set it.
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
		if _, ok := sc.connectorStatus(name); !ok {
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
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		ch, err := sc.Runtime.SetCheckpoint(ctx, name, *req.Position)
		if err != nil {
			if errors.Is(err, runtime.ErrStreamNotOpen) {
				err = fmt.Errorf("%w: %w", errStreamDown, err)
			}
			writeError(w, err)
			return
		}
		sc.Logger.Info("connector checkpoint set", "connector", name, "old", checkpointJSON(ch.Old), "new", checkpointJSON(ch.New.Position), "paused_for_it", ch.Paused, "by", actor(r))
		writeJSON(w, http.StatusOK, map[string]any{"connector": name, "checkpoint": ch.New, "old": ch.Old, "paused_for_it": ch.Paused})
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
