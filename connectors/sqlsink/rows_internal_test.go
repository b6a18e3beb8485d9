package sqlsink

import (
	"bytes"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/sinkbench"
)

// BenchmarkRowsCopyText measures the sink's own work on a row of
// BenchmarkSinkRuntime's setting, without the database: the columns'
// values read from the event and converted (rows), and the row written
// as COPY's text (copyText). One op is one row.
func BenchmarkRowsCopyText(b *testing.B) {
	for _, mode := range []string{ModeInsert, ModeUpsert} {
		b.Run(mode, func(b *testing.B) {
			values := map[string]any{
				"driver": DriverPostgres, "dsn": "postgres://localhost/none", "table": "orders", "mode": mode,
				"columns": []any{
					map[string]any{"name": "order_id", "value": "event.data.order_id"},
					map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
					map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
					map[string]any{"name": "note", "value": "event.data.note"},
				},
			}
			if mode == ModeUpsert {
				values["key"], values["version"] = []any{"order_id"}, "seq"
			}
			s := New()
			if err := s.Configure(core.NewConfig("orders_table", values)); err != nil {
				b.Fatal(err)
			}
			const batchSize = 512
			ds := make([]core.Delivery, batchSize)
			for i, ev := range sinkbench.Events("rows", batchSize) {
				ds[i] = core.Delivery{Event: ev}
			}
			var buf bytes.Buffer
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batchSize {
				bt := &batch{ds: ds, out: make([]core.Result, len(ds)), done: make([]bool, len(ds)), held: map[string]bool{}}
				rows := s.rows(bt)
				if len(rows) != batchSize {
					b.Fatalf("%d rows of %d: %v", len(rows), batchSize, bt.out[0].Err)
				}
				buf.Reset()
				s.copyText(&buf, []*job{{b: bt, rows: rows}})
			}
		})
	}
}
