package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tributary/tributary/core"
)

// Checkpoints is the embedded stream's checkpoint store: one row per
// connector in the checkpoints table, holding the JSON encoding of its
// core.Checkpoint. A Save is written by the same group-committing writer as
// the messages, so it is as durable as they are when it returns.
type Checkpoints struct {
	st *store
}

var _ core.CheckpointStore = (*Checkpoints)(nil)

// Load returns the connector's checkpoint; ok is false when it has none.
func (c *Checkpoints) Load(ctx context.Context, connector string) (cp core.Checkpoint, ok bool, err error) {
	if c.st == nil {
		return cp, false, fmt.Errorf("load checkpoint of %q: %w", connector, ErrNotOpen)
	}
	if c.st.isClosed() {
		return cp, false, fmt.Errorf("load checkpoint of %q: %w", connector, ErrClosed)
	}
	var data []byte
	err = c.st.loadCP.QueryRowContext(ctx, connector).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, fmt.Errorf("load checkpoint of %q: %w", connector, err)
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		return cp, false, fmt.Errorf("decode checkpoint of %q in stream database %q: %w", connector, c.st.file, err)
	}
	if cp.Format > core.CheckpointFormat {
		return cp, false, core.Fatal(fmt.Errorf("checkpoint of %q has format %d, newer than this version reads (%d); upgrade tributary", connector, cp.Format, core.CheckpointFormat))
	}
	return cp, true, nil
}

// Save stores cp durably before returning. A zero Format is written as
// core.CheckpointFormat.
func (c *Checkpoints) Save(ctx context.Context, cp core.Checkpoint) error {
	if cp.Connector == "" {
		return errors.New("save checkpoint: empty connector name")
	}
	if c.st == nil {
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, ErrNotOpen)
	}
	if cp.Format == 0 {
		cp.Format = core.CheckpointFormat
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint of %q: %w", cp.Connector, err)
	}
	errc := make(chan error, 1)
	o := &op{checkpoint: &checkpointRow{connector: cp.Connector, data: string(data)}, done: func(err error) { errc <- err }}
	if err := c.st.enqueue(ctx, o); err != nil {
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, err)
	}
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("save checkpoint of %q: %w", cp.Connector, ctx.Err())
	}
}
