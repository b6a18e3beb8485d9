package filesink_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
)

var update = flag.Bool("update", false, "rewrite the expected files in testdata")

// TestGolden: the lines of each format, for the same three events, are
// those of testdata/<case>: CSV with a header, the columns as JSON
// objects, the sink's map, and the CloudEvent.
func TestGolden(t *testing.T) {
	columns := []any{
		map[string]any{"name": "order_no", "value": "event.data.order_id"},
		map[string]any{"name": "total", "value": "event.data.total"},
		map[string]any{"name": "lines", "value": "event.data.lines"},
		map[string]any{"name": "accepted_at", "value": "event.time"},
		map[string]any{"name": "event_id", "value": "event.id"},
	}
	tests := []struct {
		name   string
		values map[string]any
		mapped bool
	}{
		{name: "orders.csv", values: map[string]any{"format": "csv", "columns": columns}},
		{name: "columns.jsonl", values: map[string]any{"columns": columns}},
		{name: "mapped.jsonl", values: map[string]any{}, mapped: true},
		{name: "cloudevents.jsonl", values: map[string]any{}},
	}
	datas := []string{
		`{"order_id": "SO-1001", "total": 129.90, "lines": [{"sku": "A-1", "qty": 2}]}`,
		`{"order_id": "SO-1002", "total": 5, "lines": [], "note": "comma, and \"quotes\""}`,
		`{"order_id": "SO-1003", "total": 1234567890123.4567890123, "lines": null}`,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.values["dir"], tt.values["max_events"], tt.values["name"] = dir, len(datas), "out-{seq}"
			s := newSink(t, tt.values)
			open(t, s)
			var ds []core.Delivery
			for i, data := range datas {
				d := core.Delivery{Event: &core.Event{
					ID: "ev-" + string(rune('1'+i)), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
					Type: "com.example.order.accepted", Subject: "SO-100" + string(rune('1'+i)), PartitionKey: "SO-100" + string(rune('1'+i)),
					Time: time.Date(2026, 3, 1, 9, 30, i, 0, time.UTC), DataContentType: "application/json", Data: []byte(data),
				}}
				if tt.mapped {
					d.Data = map[string]any{"order": d.Event.Subject, "seq": i}
				}
				ds = append(ds, d)
			}
			if rs := write(t, s, ds...); statuses(rs) != "delivered delivered delivered" {
				t.Fatalf("Write: %s", statuses(rs))
			}
			got := strings.Join(lines(t, filepath.Join(dir, "out-000001")), "\n") + "\n"
			path := filepath.Join("testdata", tt.name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("lines:\n%s\nwant (%s):\n%s", got, path, want)
			}
		})
	}
}
