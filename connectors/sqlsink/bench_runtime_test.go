package sqlsink_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/sqlsink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/sinkbench"
)

// BenchmarkSinkRuntime measures rows/s written by the sql sink in insert
// mode through the sink runtime, from the embedded stream and from Kafka
// (scripts/services): b.N 1 KB events of 64 keys are appended to the
// stream first, then the runtime starts and writes them all (four columns
// and the event id, one of them the 1 KB note); the time runs from the
// start of the runtime until the sink's status counts every event
// delivered, and the table must then hold every row. "defaults" is the
// sink's defaults (4 Writes of at most 1024 events at once, 4
// connections, a stream window of 2048); "batch64/conc16/conns4/
// window512" the runtime's own defaults, which the sink had before it
// declared its own (16 Writes of at most 64 events, the default window
// of 512). PostgreSQL and MariaDB are
// those of scripts/services. One op is one row; rows/write is the mean
// batch the runtime handed the sink, ms/write the mean time of a Write
// (its transaction, and the wait for a connection), db-cpu-µs/row the
// CPU time of the database server's processes on this machine per row
// (others' sessions included), session-cpu-µs/row that of the
// PostgreSQL backends of the sink's own sessions. The target is
// 50k rows/s into PostgreSQL.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, stream := range []string{"embedded", "kafka"} {
		for _, driver := range []string{sqlsink.DriverPostgres, sqlsink.DriverMySQL} {
			for _, v := range benchVariants() {
				b.Run(fmt.Sprintf("%s/%s/%s", stream, driver, v.name()), func(b *testing.B) {
					d := openDatabase(b, driver)
					table := d.tableName(b)
					st, dir, topics := sinkbench.Stream(b, stream)
					evs := sinkbench.Events("sql", b.N)
					sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
					// The sink's sessions are named, for their CPU time.
					app := fmt.Sprintf("sqlsink_bench_%d", time.Now().UnixNano())
					if driver == sqlsink.DriverPostgres {
						d.dsn += map[bool]string{true: "&", false: "?"}[strings.Contains(d.dsn, "?")] + "application_name=" + app
					}
					cfg := map[string]any{
						"table": table, "create_table": true,
						"columns": []any{
							map[string]any{"name": "order_id", "value": "event.data.order_id"},
							map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
							map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
							map[string]any{"name": "note", "value": "event.data.note"},
						},
					}
					if v.conns > 0 {
						cfg["max_open_conns"] = v.conns
					}
					s := d.newSink(b, cfg)
					b.SetBytes(int64(len(evs[0].Data)))
					commits := d.commits(b)
					b.ResetTimer()
					start, cpu, server := time.Now(), sinkbench.CPUTime(), serverCPU(driver, nil)
					var cs writeCounter = &countingSink{Sink: s}
					if v.window > 0 {
						cs = &windowSink{countingSink: countingSink{Sink: s}, window: v.window}
					}
					r := sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "orders_table", Type: sqlsink.Type, Sink: cs, From: core.FromBeginning, MaxBatch: v.batch, Concurrency: v.conc})
					sinkbench.WaitDelivered(b, r, "orders_table", b.N, 60*time.Second+time.Duration(b.N)*time.Millisecond)
					elapsed, cpu := time.Since(start), sinkbench.CPUTime()-cpu
					serverUsed := serverCPU(driver, server).total
					sessions := d.sessionCPU(b, app)
					b.StopTimer()
					waitRows(b, "rows", func() int { return d.count(b, table) }, b.N)
					b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
					if serverUsed > 0 {
						// Every session's work counts: a ceiling.
						b.ReportMetric(float64(serverUsed.Microseconds())/float64(b.N), "db-cpu-µs/row")
					}
					if sessions > 0 {
						b.ReportMetric(float64(sessions.Microseconds())/float64(b.N), "session-cpu-µs/row")
					}
					calls, nanos := cs.counts()
					b.ReportMetric(float64(b.N)/float64(calls), "rows/write")
					b.ReportMetric(float64(nanos)/float64(calls)/1e6, "ms/write")
					if n := d.commits(b) - commits; n > 0 {
						// Other sessions' commits count too: a floor.
						b.ReportMetric(float64(b.N)/float64(n), "rows/commit")
					}
				})
			}
		}
	}
}

// waitRows waits until get returns want, and fails the benchmark when it
// does not within 30s. The sink's status counts deliveries, so an event
// the stream delivers again (as Kafka may after a rebalance) counts
// twice, and the table may be a little behind the status when the
// benchmark's timer stops.
func waitRows(b *testing.B, what string, get func() int, want int) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s in the table is %d, want %d", what, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverTimes are the CPU times of the database server's processes on
// this machine, by process id.
type serverTimes struct {
	ticks map[string]int64
	// total is the time used since the times serverCPU was given: by the
	// processes there then, and all of that of the processes started
	// since (a process that ended in between is not counted).
	total time.Duration
}

// serverCPU reads the CPU times of the database server's processes
// (postgres, or mariadbd and mysqld) from /proc, and their total since
// since (nil: none).
func serverCPU(driver string, since *serverTimes) *serverTimes {
	names := map[string]bool{"postgres": driver == sqlsink.DriverPostgres, "mariadbd": driver == sqlsink.DriverMySQL, "mysqld": driver == sqlsink.DriverMySQL}
	out := &serverTimes{ticks: map[string]int64{}}
	dirs, _ := os.ReadDir("/proc")
	var used int64
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || !names[s[open+1:end]] {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out.ticks[d.Name()] = u + st
		if since != nil {
			used += u + st - since.ticks[d.Name()]
		}
	}
	// Linux counts CPU time in USER_HZ, 100 ticks a second.
	out.total = time.Duration(used) * 10 * time.Millisecond
	return out
}

// BenchmarkSinkRuntimeUpsert is BenchmarkSinkRuntime's setting, with
// its two variants, into PostgreSQL in upsert mode: the table keeps the latest
// row of each of the 64 orders (order_id the key, seq the version), so
// nearly every row updates one already there, and a Write holds several
// events of a key.
func BenchmarkSinkRuntimeUpsert(b *testing.B) {
	for _, stream := range []string{"embedded", "kafka"} {
		for _, v := range benchVariants() {
			b.Run(stream+"/postgres/"+v.name(), func(b *testing.B) {
				d := openDatabase(b, sqlsink.DriverPostgres)
				table := d.tableName(b)
				st, dir, topics := sinkbench.Stream(b, stream)
				evs := sinkbench.Events("sql", b.N)
				sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
				cfg := map[string]any{
					"table": table, "create_table": true, "mode": "upsert", "key": []any{"order_id"}, "version": "seq",
					"columns": []any{
						map[string]any{"name": "order_id", "value": "event.data.order_id"},
						map[string]any{"name": "seq", "value": "event.data.seq", "type": "integer"},
						map[string]any{"name": "total", "value": "event.data.total", "type": "decimal"},
						map[string]any{"name": "note", "value": "event.data.note"},
					},
				}
				if v.conns > 0 {
					cfg["max_open_conns"] = v.conns
				}
				s := d.newSink(b, cfg)
				b.SetBytes(int64(len(evs[0].Data)))
				b.ResetTimer()
				start, cpu, server := time.Now(), sinkbench.CPUTime(), serverCPU(sqlsink.DriverPostgres, nil)
				var cs writeCounter = &countingSink{Sink: s}
				if v.window > 0 {
					cs = &windowSink{countingSink: countingSink{Sink: s}, window: v.window}
				}
				r := sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "orders_table", Type: sqlsink.Type, Sink: cs, From: core.FromBeginning, MaxBatch: v.batch, Concurrency: v.conc})
				sinkbench.WaitDelivered(b, r, "orders_table", b.N, 60*time.Second+time.Duration(b.N)*time.Millisecond)
				elapsed, cpu := time.Since(start), sinkbench.CPUTime()-cpu
				serverUsed := serverCPU(sqlsink.DriverPostgres, server).total
				b.StopTimer()
				if serverUsed > 0 {
					// Every session's work counts: a ceiling.
					b.ReportMetric(float64(serverUsed.Microseconds())/float64(b.N), "db-cpu-µs/row")
				}
				waitRows(b, "the latest seq", func() int {
					var last int
					if err := d.db.QueryRow("SELECT MAX(seq) FROM " + table).Scan(&last); err != nil {
						b.Fatalf("read the latest seq: %v", err)
					}
					return last
				}, b.N-1)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
				calls, _ := cs.counts()
				b.ReportMetric(float64(b.N)/float64(calls), "rows/write")
			})
		}
	}
}

// BenchmarkRuntimeNoSink is BenchmarkSinkRuntime's setting with a sink
// that delivers every event at once and writes nothing: what the stream
// and the runtime cost, and how fast they go, beside the sql sink.
func BenchmarkRuntimeNoSink(b *testing.B) {
	for _, stream := range []string{"embedded", "kafka"} {
		b.Run(stream+"/batch64/conc16", func(b *testing.B) {
			st, dir, topics := sinkbench.Stream(b, stream)
			evs := sinkbench.Events("sql", b.N)
			sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start, cpu := time.Now(), sinkbench.CPUTime()
			deliver := core.SinkFunc(func(context.Context, core.Delivery) core.Result { return core.Result{Status: core.StatusDelivered} })
			r := sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "nothing", Type: "nothing", Sink: deliver, From: core.FromBeginning, MaxBatch: 64, Concurrency: 16})
			sinkbench.WaitDelivered(b, r, "nothing", b.N, 60*time.Second+time.Duration(b.N)*time.Millisecond)
			elapsed, cpu := time.Since(start), sinkbench.CPUTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/row")
		})
	}
}

// sessionCPU returns the CPU time of the PostgreSQL backends serving the
// sessions named app, started since the measure began; 0 for MariaDB.
func (d *database) sessionCPU(b *testing.B, app string) time.Duration {
	if d.driver != sqlsink.DriverPostgres {
		return 0
	}
	rows, err := d.db.Query("SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		b.Fatalf("list the sink's sessions: %v", err)
	}
	defer rows.Close()
	var ticks int64
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			// The server runs elsewhere.
			return 0
		}
		f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// benchVariant is a setting of BenchmarkSinkRuntime: the runtime's
// max_batch and concurrency, the sink's max_open_conns, the stream
// window; 0 leaves the sink's default.
type benchVariant struct{ batch, conc, conns, window int }

func (v benchVariant) name() string {
	if v == (benchVariant{}) {
		return "defaults"
	}
	n := fmt.Sprintf("batch%d/conc%d/conns%d", v.batch, v.conc, v.conns)
	if v.window > 0 {
		n += fmt.Sprintf("/window%d", v.window)
	}
	return n
}

// benchVariants are the settings BenchmarkSinkRuntime and
// BenchmarkSinkRuntimeUpsert run: the sink's defaults, and the runtime's
// own defaults with the default stream window, which the sink had before
// it declared its own.
func benchVariants() []benchVariant {
	return []benchVariant{{}, {batch: 64, conc: 16, conns: 4, window: 512}}
}

// writeCounter is a sink that counts its Writes.
type writeCounter interface {
	core.Sink
	counts() (calls, nanos int64)
}

// windowSink is a countingSink that asks for another stream window.
type windowSink struct {
	countingSink
	window int
}

func (w *windowSink) StreamWindow() int { return w.window }

// countingSink counts the Writes of the sink it wraps, their time and
// the most deliveries one held.
type countingSink struct {
	*sqlsink.Sink
	calls, nanos, most atomic.Int64
}

func (c *countingSink) counts() (int64, int64) { return c.calls.Load(), c.nanos.Load() }

func (c *countingSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	start := time.Now()
	for n := int64(len(ds)); ; {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
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
