package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tributary/tributary/core"
)

// outboxChange turns a row inserted into the outbox table into a message
// change: Payload is the payload column, Key the aggregate id, and the
// other columns are in Meta (and the whole row in After).
func outboxChange(row map[string]any) core.Change {
	return core.Change{
		Op:      core.OpMessage,
		Key:     map[string]any{"aggregateid": row["aggregateid"]},
		After:   row,
		Payload: row["payload"],
		Meta: map[string]any{
			"id":            row["id"],
			"aggregatetype": row["aggregatetype"],
			"aggregateid":   row["aggregateid"],
			"type":          row["type"],
			"headers":       row["headers"],
		},
	}
}

// outboxTracker deletes captured outbox rows once their changes are
// acknowledged, when delete_captured is on.
type outboxTracker struct {
	enabled bool
	mu      sync.Mutex
	queue   []outboxEntry
	ready   []string
	kick    chan struct{}
}

type outboxEntry struct {
	key ord
	id  string
}

func newOutboxTracker(enabled bool) *outboxTracker {
	return &outboxTracker{enabled: enabled, kick: make(chan struct{}, 1)}
}

// add records the outbox row id read at key.
func (o *outboxTracker) add(key ord, id any) {
	if !o.enabled || id == nil {
		return
	}
	o.mu.Lock()
	o.queue = append(o.queue, outboxEntry{key, fmt.Sprint(id)})
	o.mu.Unlock()
}

// ack releases the rows read at or before key for deletion.
func (o *outboxTracker) ack(key ord) {
	if !o.enabled {
		return
	}
	o.mu.Lock()
	n := 0
	for n < len(o.queue) && !key.less(o.queue[n].key) {
		o.ready = append(o.ready, o.queue[n].id)
		n++
	}
	o.queue = o.queue[n:]
	o.mu.Unlock()
	if n > 0 {
		select {
		case o.kick <- struct{}{}:
		default:
		}
	}
}

// run deletes released rows until ctx is done, then once more within
// final.
func (o *outboxTracker) run(ctx context.Context, pool *pgxpool.Pool, table *tableMeta, log *slog.Logger) {
	if !o.enabled {
		return
	}
	sql := fmt.Sprintf("DELETE FROM %s WHERE %s = ANY($1::text[]::%s[])", table.sqlName(), ident("id"), table.colType("id"))
	del := func(ctx context.Context) {
		o.mu.Lock()
		ids := o.ready
		o.ready = nil
		o.mu.Unlock()
		if len(ids) == 0 {
			return
		}
		if _, err := pool.Exec(ctx, sql, ids); err != nil {
			log.Warn("delete captured outbox rows failed; they stay in the table and will not be emitted again", "table", table.qualified(), "rows", len(ids), "err", err)
		}
	}
	for {
		select {
		case <-o.kick:
			del(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			del(fctx)
			cancel()
			return
		}
	}
}
