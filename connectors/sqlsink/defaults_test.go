package sqlsink_test

import (
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/sinkbench"
)

// TestWriteDefaults: with max_batch and concurrency left out, the runtime
// hands the sink Writes of its own default size (up to 1024 events, 256
// in upsert mode), not the runtime's generic 64, and every row is
// written.
func TestWriteDefaults(t *testing.T) {
	const n = 3000
	tests := []struct {
		name string
		mode map[string]any
		most int64 // the sink's default max_batch
		rows int   // the rows the table holds at the end
	}{
		{name: "insert", mode: map[string]any{"mode": "insert"}, most: 1024, rows: n},
		{name: "upsert", mode: map[string]any{"mode": "upsert", "key": []any{"order_id"}, "version": "seq"}, most: 256, rows: sinkbench.Keys},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openDatabase(t, sqlsink.DriverSQLite)
			table := d.tableName(t)
			cfg := map[string]any{
				"table": table, "create_table": true,
				"columns": []any{
					map[string]any{"name": "order_id", "value": "event.data.order_id"},
					map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
				},
			}
			for k, v := range tt.mode {
				cfg[k] = v
			}
			s := d.newSink(t, cfg)
			st, dir, topics := sinkbench.Stream(t, "memory")
			sinkbench.Prefill(t, st, dir, topics.For(sinkbench.Type), sinkbench.Events("defaults", n))
			cs := &countingSink{Sink: s}
			r := sinkbench.Run(t, st, dir, topics, runtime.Sink{Name: "orders_table", Type: sqlsink.Type, Sink: cs, From: core.FromBeginning})
			sinkbench.WaitDelivered(t, r, "orders_table", n, 60*time.Second)
			if got := d.count(t, table); got != tt.rows {
				t.Errorf("the table holds %d rows, want %d", got, tt.rows)
			}
			if most := cs.most.Load(); most <= 64 || most > tt.most {
				t.Errorf("the largest Write held %d events, want more than the runtime's 64 and at most the sink's %d", most, tt.most)
			}
		})
	}
}
