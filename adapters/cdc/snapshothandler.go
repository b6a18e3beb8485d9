package cdc

import (
	"encoding/json"
	"errors"
	"net/http"
)

// SnapshotRequest is what a CDC connector's snapshot endpoint needs of it.
type SnapshotRequest struct {
	// Example is a table name as the connector's tables are written
	// ("schema.table", "database.table"), for the error of a bad body.
	Example string
	// Start starts the snapshot of table, returning its id and the
	// table's name as the connector reports it.
	Start func(table string) (id, name string, err error)
	// Unknown and Running are the errors Start returns for a table it
	// does not capture and while another snapshot runs.
	Unknown, Running error
}

// SnapshotHandler serves POST /v1/connectors/<name>/snapshot with the
// body {"table": "..."}: 202 with the snapshot's id, 400 for a bad body
// or a table not captured, 409 while another snapshot runs, 503 while the
// connector is not streaming.
func SnapshotHandler(r SnapshotRequest) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body struct {
			Table string `json:"table"`
		}
		answer := func(code int, v map[string]any) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(v)
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 1<<16))
		if err := dec.Decode(&body); err != nil || body.Table == "" {
			answer(http.StatusBadRequest, map[string]any{"error": `the body must be {"table":"` + r.Example + `"}`})
			return
		}
		id, name, err := r.Start(body.Table)
		switch {
		case errors.Is(err, r.Unknown):
			answer(http.StatusBadRequest, map[string]any{"error": err.Error()})
		case errors.Is(err, r.Running):
			answer(http.StatusConflict, map[string]any{"error": err.Error()})
		case err != nil:
			answer(http.StatusServiceUnavailable, map[string]any{"error": err.Error() + ": retry once the connector is streaming"})
		default:
			answer(http.StatusAccepted, map[string]any{"id": id, "table": name, "state": "running"})
		}
	})
}
