package mysql_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

func TestConformance(t *testing.T) {
	d := newDB(t)
	d.exec(t, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT)`)
	cfg := d.config("items")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	// Heartbeat changes would count as changes the kit did not produce;
	// none is due within an hour.
	cfg["heartbeat"] = map[string]any{"interval": "1h"}
	var seq atomic.Int64
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source { return newSource(t, cfg) },
		Produce: func(t conformance.TB, n int) {
			// One transaction, so that a partial ack falls inside it.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			tx, err := d.sql.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if _, err := tx.ExecContext(ctx, `INSERT INTO items VALUES (?, 'x')`, seq.Add(1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		},
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
