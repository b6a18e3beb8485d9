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
// hands the sink Writes of its own default size (up to 1024 events), not
// the runtime's generic 64, and every row is written.
func TestWriteDefaults(t *testing.T) {
	const n = 3000
	d := openDatabase(t, sqlsink.DriverSQLite)
	table := d.tableName(t)
	s := d.newSink(t, map[string]any{
		"table": table, "create_table": true,
		"columns": []any{
			map[string]any{"name": "order_id", "value": "event.data.order_id"},
			map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
		},
	})
	st, dir, topics := sinkbench.Stream(t, "memory")
	sinkbench.Prefill(t, st, dir, topics.For(sinkbench.Type), sinkbench.Events("defaults", n))
	cs := &countingSink{Sink: s}
	r := sinkbench.Run(t, st, dir, topics, runtime.Sink{Name: "orders_table", Type: sqlsink.Type, Sink: cs, From: core.FromBeginning})
	sinkbench.WaitDelivered(t, r, "orders_table", n, 60*time.Second)
	if got := d.count(t, table); got != n {
		t.Errorf("the table holds %d rows, want %d", got, n)
	}
	if most := cs.most.Load(); most <= 64 || most > 1024 {
		t.Errorf("the largest Write held %d events, want more than the runtime's 64 and at most the sink's 1024", most)
	}
}
