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

// BenchmarkSearchBySubject measures `events search --subject S --limit
// 100` on a SQLite log of 200k events of 1 KB written by the sink (so
// that most subjects are in the subjects' index, the latest in the
// tail): "order" searches a subject of 5 events, as an order has,
// "busy" one of the 64 subjects fillBench gives about 3,100 events each.
func BenchmarkSearchBySubject(b *testing.B) {
	s, _ := openSink(b, map[string]any{"sync": "normal"})
	ds := benchDeliveries(1000)
	var seq atomic.Int64
	for n := 0; n < 200_000; n += len(ds) {
		fillBench(ds, &seq)
		if n%40_000 == 0 {
			ds[0].Event.Subject = "A-1001"
		}
		write(b, s, ds)
	}
	ctx := context.Background()
	for _, c := range []struct {
		name, subject string
		want          int
	}{{"order", "A-1001", 5}, {"busy", "o-7", 100}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				evs, err := audit.Search(ctx, s.DB(), audit.Query{Subject: c.subject, Limit: 100})
				if err != nil || len(evs) != c.want {
					b.Fatalf("search --subject %s: %d events, %v; want %d", c.subject, len(evs), err, c.want)
				}
			}
		})
	}
}
