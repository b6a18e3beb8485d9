package sqlsink_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

const benchType = "com.example.order.accepted"

// BenchmarkSinkRuntime measures rows/s written by the sql sink in insert
// mode through the sink runtime, from the embedded stream and from Kafka
// (scripts/services): b.N 1 KB events of 64 keys are appended to the
// stream first, then the runtime starts and writes them all (four columns
// and the event id, one of them the 1 KB note); the time runs from the
// start of the runtime until the sink's status counts every event
// delivered, and the table must then hold every row. "batch64/conc16/
// conns4" is the runtime's and the sink's defaults (16 Writes of at most
// 64 events at once, 4 connections); the others set max_batch: 512 and
// concurrency and max_open_conns to 8 or 2. PostgreSQL and MariaDB are
// those of scripts/services. One op is one row; rows/write is the mean
// batch the runtime handed the sink, ms/write the mean time of a Write
// (its transaction, and the wait for a connection). The target is
// 50k rows/s into PostgreSQL.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, stream := range []string{"embedded", "kafka"} {
		for _, driver := range []string{sqlsink.DriverPostgres, sqlsink.DriverMySQL} {
			for _, v := range []struct{ batch, conc, conns int }{{64, 16, 4}, {512, 8, 8}, {512, 2, 2}} {
				b.Run(fmt.Sprintf("%s/%s/batch%d/conc%d/conns%d", stream, driver, v.batch, v.conc, v.conns), func(b *testing.B) {
					d := openDatabase(b, driver)
					table := d.tableName(b)
					st, dir, topics := benchStream(b, stream)
					evs := benchEvents(b.N)
					prefill(b, st, dir, topics.Prefix+benchType, evs)
					s := d.newSink(b, map[string]any{
						"table": table, "create_table": true, "max_open_conns": v.conns,
						"columns": []any{
							map[string]any{"name": "order_id", "value": "event.data.order_id"},
							map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
							map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
							map[string]any{"name": "note", "value": "event.data.note"},
						},
					})
					b.SetBytes(int64(len(evs[0].Data)))
					commits := d.commits(b)
					b.ResetTimer()
					start, cpu := time.Now(), cpuTime()
					cs := &countingSink{Sink: s}
					r := run(b, st, dir, topics, runtime.Sink{Name: "orders_table", Type: sqlsink.Type, Sink: cs, From: core.FromBeginning, MaxBatch: v.batch, Concurrency: v.conc})
					deadline := start.Add(60*time.Second + time.Duration(b.N)*time.Millisecond)
					for {
						st := status(r)
						if st.Delivered >= uint64(b.N) {
							break
						}
						if st.DeadLettered != 0 || time.Now().After(deadline) {
							b.Fatalf("%d of %d rows written; status %+v", st.Delivered, b.N, st)
						}
						time.Sleep(2 * time.Millisecond)
					}
					elapsed, cpu := time.Since(start), cpuTime()-cpu
					b.StopTimer()
					if n := d.count(b, table); n != b.N {
						b.Fatalf("the table holds %d rows, want %d", n, b.N)
					}
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
					b.ReportMetric(float64(b.N)/float64(cs.calls.Load()), "rows/write")
					b.ReportMetric(float64(cs.nanos.Load())/float64(cs.calls.Load())/1e6, "ms/write")
					if n := d.commits(b) - commits; n > 0 {
						// Other sessions' commits count too: a floor.
						b.ReportMetric(float64(b.N)/float64(n), "rows/commit")
					}
				})
			}
		}
	}
}

// benchStream configures the named stream ("embedded" or "kafka") for b
// and returns it, not opened, with the state directory it and the runtime
// share and the topic layout the runtime uses on it; every call gets
// topics of its own.
func benchStream(b *testing.B, name string) (core.Stream, string, runtime.Topics) {
	b.Helper()
	var st core.Stream
	values := map[string]any{}
	switch name {
	case "embedded":
		st = embedded.New()
	case "kafka":
		st = kafka.New()
		var brokers []any
		for _, br := range servicetest.Kafka(b) {
			brokers = append(brokers, br)
		}
		values["brokers"] = brokers
	}
	if err := st.Configure(core.NewConfig("stream", values)); err != nil {
		b.Fatalf("configure %s stream: %v", name, err)
	}
	return st, b.TempDir(), runtime.Topics{Mode: "per_type", Prefix: fmt.Sprintf("bench-sql-%d.", time.Now().UnixNano())}
}

// benchEvents returns n events of about 1 KB of JSON data, keys order-0 ..
// order-63 in turn.
func benchEvents(n int) []*core.Event {
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*core.Event, n)
	for i := range out {
		key := "order-" + strconv.Itoa(i%64)
		out[i] = &core.Event{
			ID: "ev-" + strconv.Itoa(i), Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: benchType, Subject: key, PartitionKey: key, DataContentType: "application/json",
			Time: t0.Add(time.Duration(i) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, i, pad),
		}
	}
	return out
}

// prefill opens st in dir, appends evs to topic in batches of 512, waits
// until every one is durable, and closes st again for the runtime to open.
func prefill(b *testing.B, st core.Stream, dir, topic string, evs []*core.Event) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := st.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		b.Fatalf("open the stream: %v", err)
	}
	pub := st.Publisher().(core.EventPublisher)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < len(evs); i += 512 {
		wg.Add(1)
		if err := pub.PublishEvents(ctx, topic, evs[i:min(i+512, len(evs))], func(err error) {
			if err != nil {
				failed.Store(err)
			}
			wg.Done()
		}); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("publish: %v", err)
	}
	if err := st.Close(ctx); err != nil {
		b.Fatalf("close the stream: %v", err)
	}
}

// run starts the runtime on st (which it opens, in dir) with sink, and
// stops it when b ends.
func run(b *testing.B, st core.Stream, dir string, topics runtime.Topics, sink runtime.Sink) *runtime.Runtime {
	b.Helper()
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          topics,
		EventTypes:      []string{benchType},
		Sinks:           []runtime.Sink{sink},
		StateDir:        dir,
		Registerer:      prometheus.NewRegistry(),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second,
		DrainTimeout:    5 * time.Second,
	})
	if err != nil {
		b.Fatalf("runtime.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				b.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("Run did not return within 30s of the cancel")
		}
	})
	return r
}

func status(r *runtime.Runtime) runtime.SinkStatus {
	for _, s := range r.Status().Sinks {
		if s.Name == "orders_table" {
			return s
		}
	}
	return runtime.SinkStatus{}
}

// cpuTime returns the CPU time the process has used so far: a figure
// that other work on a shared machine distorts less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingSink counts the Writes of the sink it wraps, and their time.
type countingSink struct {
	core.Sink
	calls, nanos atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	start := time.Now()
	defer func() {
		c.calls.Add(1)
		c.nanos.Add(int64(time.Since(start)))
	}()
	return c.Sink.Write(ctx, ds)
}

// commits returns the database's count of committed transactions so far
// (of every session).
func (d *database) commits(b *testing.B) int64 {
	b.Helper()
	var n int64
	var err error
	switch d.driver {
	case sqlsink.DriverPostgres:
		err = d.db.QueryRow("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").Scan(&n)
	case sqlsink.DriverMySQL:
		var name string
		err = d.db.QueryRow("SHOW GLOBAL STATUS LIKE 'Com_commit'").Scan(&name, &n)
	}
	if err != nil {
		b.Fatalf("count commits: %v", err)
	}
	return n
}
