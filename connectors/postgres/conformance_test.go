package postgres_test

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
	tb := d.table("items")
	d.exec(t, sprintf(`create table %s (id bigint primary key, name text)`, tb))
	cfg := d.config("items")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	var seq atomic.Int64
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source { return newSource(t, cfg) },
		Produce: func(t conformance.TB, n int) {
			// One transaction, so that a partial ack falls inside it.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			tx, err := d.pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range n {
				if _, err := tx.Exec(ctx, sprintf(`insert into %s values ($1, 'x')`, tb), seq.Add(1)); err != nil {
					t.Fatal(err)
				}
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		},
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
