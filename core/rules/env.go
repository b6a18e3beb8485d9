package rules

import (
	"time"

	"github.com/tributary/tributary/core"
)

// env is what expressions see. Field tags are the variable names.
type env struct {
	Op        string         `expr:"op"`
	Key       map[string]any `expr:"key"`
	Before    map[string]any `expr:"before"`
	After     map[string]any `expr:"after"`
	Payload   any            `expr:"payload"`
	Meta      map[string]any `expr:"meta"`
	Source    sourceEnv      `expr:"source"`
	Position  string         `expr:"position"`
	Connector string         `expr:"connector"`
}

// sourceEnv is the `source` variable.
type sourceEnv struct {
	System     string    `expr:"system"`
	Schema     string    `expr:"schema"`
	Table      string    `expr:"table"`
	Endpoint   string    `expr:"endpoint"`
	CommitTime time.Time `expr:"commit_time"`
	TxID       string    `expr:"tx_id"`
}

// fill sets e from ch. The position's printable form is computed only when
// an expression reads it.
func (e *env) fill(connector string, ch *core.Change, withPosition bool) {
	*e = env{
		Op:      string(ch.Op),
		Key:     ch.Key,
		Before:  ch.Before,
		After:   ch.After,
		Payload: ch.Payload,
		Meta:    ch.Meta,
		Source: sourceEnv{
			System:     ch.Source.System,
			Schema:     ch.Source.Schema,
			Table:      ch.Source.Table,
			Endpoint:   ch.Source.Endpoint,
			CommitTime: ch.Source.CommitTime,
			TxID:       ch.Source.TxID,
		},
		Connector: connector,
	}
	if withPosition {
		e.Position = ch.Position.String()
	}
}
