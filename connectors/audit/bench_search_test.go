package audit_test

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
)

// searchBenchEvents is how many events the log of BenchmarkSearchByID
// holds.
const searchBenchEvents = 1_000_000

// BenchmarkSearchByID measures `events search --id` on a SQLite log of
// 1M events of 1 KB with random UUID ids, written by the sink (so that
// their ids are in merged runs and a tail): "cli" opens the log, searches
// one id and closes it, as the command does beside a running sidecar;
// "open" searches a log opened once (audit.Open); "missing" searches an
// id the log does not hold. Building the log takes a minute or more.
func BenchmarkSearchByID(b *testing.B) {
	s, dir := openSink(b, map[string]any{"sync": "normal"})
	ds := benchDeliveries(1024)
	var seq atomic.Int64
	var known []string
	start := time.Now()
	for n := 0; n < searchBenchEvents; n += len(ds) {
		fillBench(ds, &seq)
		write(b, s, ds)
		known = append(known, ds[n%len(ds)].Event.ID)
	}
	b.Logf("wrote %d events in %v", seq.Load(), time.Since(start).Round(time.Second))
	cfg, err := audit.ParseConfig(core.NewConfig("audit_log", nil))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pick := func() string { return known[rand.IntN(len(known))] }
	check := func(b *testing.B, db *audit.DB, id string, want int) {
		evs, err := audit.Search(ctx, db, audit.Query{ID: id})
		if err != nil || len(evs) != want {
			b.Fatalf("search --id %s: %d events, %v; want %d", id, len(evs), err, want)
		}
	}
	b.Run("cli", func(b *testing.B) {
		for b.Loop() {
			db, err := audit.Open(ctx, cfg, dir)
			if err != nil {
				b.Fatal(err)
			}
			check(b, db, pick(), 1)
			db.Close()
		}
	})
	db, err := audit.Open(ctx, cfg, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			check(b, db, pick(), 1)
		}
	})
	b.Run("missing", func(b *testing.B) {
		for b.Loop() {
			check(b, db, "no-such-event", 0)
		}
	})
}
