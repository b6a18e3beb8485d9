package mysql_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/connectors/kafka"
	connector "github.com/tributary/tributary/connectors/mysql"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// benchRows is the load of the catch-up benchmark: single-row inserts in
// 1k-row transactions. TRIBUTARY_BENCH_ROWS=1000000 gives the README's
// figures.
func benchRows(b *testing.B) int {
	n := 100_000
	if v := os.Getenv("TRIBUTARY_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TRIBUTARY_BENCH_ROWS: %v", err)
		}
	}
	return n
}

// benchInFlight is the connectors' max_in_flight: TRIBUTARY_BENCH_INFLIGHT,
// default (unset or 0) the one the sidecar gives a mysql_cdc entry
// without max_in_flight, connector.MaxInFlight.
func benchInFlight(b *testing.B) int {
	v := os.Getenv("TRIBUTARY_BENCH_INFLIGHT")
	if v == "" || v == "0" {
		return connector.MaxInFlight
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("TRIBUTARY_BENCH_INFLIGHT: %v", err)
	}
	return n
}

// benchMapper makes one event of each created row, its data the whole
// row, with the rules engine the sidecar runs (runtime.Rules): what a
// mysql_cdc entry with this rule under emit costs.
func benchMapper(b *testing.B, name string) runtime.Mapper {
	set, err := rules.Compile(name, []core.Rule{{
		Name: "r", When: `op == "create"`, Type: "com.example.order.placed",
		PartitionKey: "string(after.id)", Data: "after",
	}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return runtime.Rules(set)
}

func benchRuntime(b *testing.B, st core.Stream, name, dir string, cfg map[string]any) *runtime.Runtime {
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: "tributary.bench.mysql"},
		Connectors:      []runtime.Connector{{Name: name, Type: "mysql_cdc", Source: newSource(b, cfg), Mapper: benchMapper(b, name), MaxInFlight: benchInFlight(b)}},
		StateDir:        dir,
		ShutdownTimeout: 30 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// sink is where a catch-up run streams: a new stream each run, on the same
// state (the embedded stream's file, Kafka's checkpoint topic).
type sink struct {
	name string
	dir  string
	new  func() core.Stream
}

// runUntil runs a runtime until cond holds of its connector, then stops it.
func runUntil(b *testing.B, rt *runtime.Runtime, cond func(runtime.ConnectorStatus) bool) time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- rt.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		s := rt.Status().Connectors[0]
		if cond(s) {
			break
		}
		if time.Now().After(deadline) || s.State == runtime.StateFailed || testing.Verbose() && time.Since(start) > 20*time.Second && time.Since(start)%(5*time.Second) < time.Millisecond {
			if !time.Now().After(deadline) && s.State != runtime.StateFailed {
				b.Logf("waiting: %+v", s)
				continue
			}
			cancel()
			<-done
			b.Fatalf("stuck: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Errorf("runtime: %v", err)
	}
	return took
}

// resetPeakRSS starts a new peak resident set measure (Linux), from a
// heap whose free pages went back to the system. With
// TRIBUTARY_BENCH_RSSLOG set, it also logs to stderr, every time the
// resident set grew by 5 MB, what the Go runtime holds.
func resetPeakRSS() {
	// What the load before it allocated and freed is returned first: the
	// peak is the catch-up's, from a process as small as it can be.
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	if os.Getenv("TRIBUTARY_BENCH_RSSLOG") == "" {
		return
	}
	fmt.Fprintf(os.Stderr, "rss at reset %.1f MB\n", procStatus("VmRSS:"))
	rssLogOnce.Do(func() {
		go func() {
			top := 0.0
			for range time.Tick(20 * time.Millisecond) {
				if r := procStatus("VmRSS:"); r > top+5 {
					top = r
					var ms goruntime.MemStats
					goruntime.ReadMemStats(&ms)
					fmt.Fprintf(os.Stderr, "rss %.0f MB (anon %.0f, file %.0f): go sys %d heap inuse %d idle %d released %d stack %d other %d MB, next gc %d MB\n", r, procStatus("RssAnon:"), procStatus("RssFile:"),
						ms.Sys>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackSys>>20, (ms.OtherSys+ms.GCSys+ms.MSpanSys)>>20, ms.NextGC>>20)
				}
			}
		}()
	})
}

var rssLogOnce sync.Once

// peakRSS returns the peak resident set since the last reset, in MB.
func peakRSS() float64 { return procStatus("VmHWM:") }

// procStatus returns a field of /proc/self/status in MB, or -1 where
// /proc does not tell.
func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, field)), "%f", &kb)
			return kb / 1024
		}
	}
	return -1
}

// BenchmarkCatchUp commits TRIBUTARY_BENCH_ROWS single-row inserts in
// 1k-row transactions while the connectors are stopped, then, in the same
// run, times the readers of that binlog listed by ceilings, each
// TRIBUTARY_BENCH_CEILING_RUNS times (their CPU time too), and the
// sidecar's runtime catching up into the embedded stream and into Kafka
// (when TRIBUTARY_KAFKA_BROKERS is set; TRIBUTARY_BENCH_STREAMS picks
// one), each until every change's event is durable and its checkpoint
// stored. reportReads says what it reports: rates, CPU time per change,
// the catch-up's share of each ceiling, and the peak RSS of the process
// during each catch-up.
func BenchmarkCatchUp(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	d := newDB(b)
	d.exec(b, `CREATE TABLE bench (id BIGINT PRIMARY KEY, name VARCHAR(40), total DECIMAL(12,2), created DATETIME(6))`)
	n := benchRows(b)
	cfg := d.config("bench")
	cfg["snapshot"] = map[string]any{"mode": "never"}
	if v := os.Getenv("TRIBUTARY_BENCH_MAXBATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("TRIBUTARY_BENCH_MAXBATCH: %v", err)
		}
		cfg["max_batch"] = n
	}
	sinks := []sink{{name: "embedded", dir: b.TempDir()}}
	sinks[0].new = func() core.Stream {
		st := embedded.New()
		if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(sinks[0].dir, "stream.db")})); err != nil {
			b.Fatal(err)
		}
		return st
	}
	if os.Getenv(servicetest.EnvKafka) != "" {
		brokers := servicetest.Kafka(b)
		bs := make([]any, len(brokers))
		for i, x := range brokers {
			bs[i] = x
		}
		sinks = append(sinks, sink{name: "kafka", dir: b.TempDir(), new: func() core.Stream {
			st := kafka.New()
			if err := st.Configure(core.NewConfig("stream", map[string]any{"brokers": bs, "linger": "2ms"})); err != nil {
				b.Fatal(err)
			}
			return st
		}})
	} else {
		b.Logf("Kafka not measured: %s is not set (scripts/services up kafka)", servicetest.EnvKafka)
	}
	if only := os.Getenv("TRIBUTARY_BENCH_STREAMS"); only != "" {
		// One stream per process, as the sidecar runs: its peak RSS holds
		// nothing another stream left behind.
		sinks = slices.DeleteFunc(sinks, func(s sink) bool { return !slices.Contains(strings.Fields(only), s.name) })
	}
	bin, _ := exec.LookPath("mariadb-binlog")
	if bin == "" {
		bin, _ = exec.LookPath("mysqlbinlog")
	}
	next := 1
	var binlog []volume
	reads := map[string][]reading{}
	rss := map[string]float64{}
	for b.Loop() {
		b.StopTimer()
		// Each connector starts at the binlog's end and stores a heartbeat
		// checkpoint there; the load then comes while they are stopped.
		names := map[string]string{}
		for _, s := range sinks {
			names[s.name] = fmt.Sprintf("mybench_%s_%d", s.name, time.Now().UnixNano())
			runUntil(b, benchRuntime(b, s.new(), names[s.name], s.dir, cfg), func(st runtime.ConnectorStatus) bool { return st.Checkpoint != "" })
		}
		d.exec(b, `FLUSH BINARY LOGS`)
		first := lastBinlog(b, d)
		for start := next; start < next+n; start += 1000 {
			end := min(start+999, next+n-1)
			d.exec(b, sprintf(`INSERT INTO bench SELECT seq, CONCAT('order ', seq), seq * 1.25, NOW(6) FROM seq_%d_to_%d`, start, end))
		}
		next += n
		files := binlogsFrom(b, d, first)
		b.StartTimer()
		for _, c := range ceilings(b, bin, files) {
			for run := range ceilingRuns(b) {
				start := time.Now()
				cmd := exec.Command(c.args[0], c.args[1:]...)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%s (run %d): %v: %s", strings.Join(c.args, " "), run+1, err, out)
				}
				reads[c.name] = append(reads[c.name], reading{wall: time.Since(start), cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()})
				if c.name == "gomysql" {
					binlog = append(binlog, binlogVolume(b, string(out)))
				}
			}
		}
		for _, s := range sinks {
			rt := benchRuntime(b, s.new(), names[s.name], s.dir, cfg)
			resetPeakRSS()
			stopProfile := startCPUProfile(b, s.name)
			cpu0 := processCPU()
			profiled := false
			took := runUntil(b, rt, func(st runtime.ConnectorStatus) bool {
				if p := os.Getenv("TRIBUTARY_BENCH_HEAPPROFILE"); p != "" && !profiled && st.EventsEmitted >= uint64(n/2) {
					profiled = true
					writeHeapProfile(b, p+"."+s.name)
				}
				return st.EventsEmitted >= uint64(n) && st.InFlight == 0
			})
			reads[s.name] = append(reads[s.name], reading{wall: took, cpu: processCPU() - cpu0})
			stopProfile()
			rss[s.name] = max(rss[s.name], peakRSS())
		}
	}
	reportReads(b, n, reads, rss)
	if len(binlog) > 0 {
		// Other writers to the server while it loaded (other tests) put
		// their events in the same binlog, which every reader and the
		// catch-up then read too: the rows and bytes read per change of
		// the load say so (1 row and 37-50 bytes when only the load
		// wrote).
		rows := make([]float64, len(binlog))
		bytes := make([]float64, len(binlog))
		for i, v := range binlog {
			rows[i], bytes[i] = float64(v.rows)/float64(n), v.mb*1e6/float64(n)
		}
		b.ReportMetric(median(rows), "binlog-rows/change")
		b.ReportMetric(median(bytes), "binlog-bytes/change")
	}
}

// volume is what bench/binlogread decoded from the load's binlog: all its
// rows, of every table, and its size.
type volume struct {
	rows int
	mb   float64
}

// binlogVolume reads the rows and megabytes of bench/binlogread's report.
func binlogVolume(b *testing.B, out string) volume {
	var v volume
	var rowEvents, events int
	at := strings.Index(out, "binlogread: ")
	if at < 0 {
		b.Fatalf("bench/binlogread reported no volume: %s", out)
	}
	if _, err := fmt.Sscanf(out[at:], "binlogread: %d rows in %d rows events of %d events (%f MB)", &v.rows, &rowEvents, &events, &v.mb); err != nil {
		b.Fatalf("read bench/binlogread's report %q: %v", out, err)
	}
	return v
}

// reading is one read of the load's binlog: a ceiling's or a catch-up's
// wall time and the CPU time (user and system) its process spent.
type reading struct{ wall, cpu time.Duration }

// ceiling is a reader of the load's binlog that the catch-up is compared
// with: its name in the metrics and its command line.
type ceiling struct {
	name string
	args []string
}

// ceilings lists the readers of files, the load's binlogs, from the
// cheapest read to the costliest: mariadb-binlog (bin, when installed)
// copying the events to /dev/null without decoding rows ("raw") and
// writing every row as text ("raw-decoded"); with
// TRIBUTARY_BENCH_BINLOGREAD naming bench/binlogread, go-mysql's syncer
// (the connector's library) reading the events without decoding them
// ("gomysql-raw", the second raw reader), decoding every row and dropping
// it ("gomysql", the ceiling of the library the connector reads with) and
// writing every row as text too ("gomysql-text").
func ceilings(b *testing.B, bin string, files []string) []ceiling {
	dsn := servicetest.MySQL(b)
	var out []ceiling
	if bin != "" {
		host, port, user, pass := dsnParts(b, dsn)
		args := append([]string{bin, "--read-from-remote-server", "-h", host, "-P", port, "-u", user, "-p" + pass, "-r", "/dev/null"}, files...)
		out = append(out, ceiling{"raw", args},
			ceiling{"raw-decoded", append([]string{bin, "--verbose", "--base64-output=DECODE-ROWS"}, args[1:]...)})
	}
	if gr := os.Getenv("TRIBUTARY_BENCH_BINLOGREAD"); gr != "" {
		args := []string{gr, "-dsn", dsn, "-file", files[0]}
		out = append(out, ceiling{"gomysql-raw", append(slices.Clone(args), "-raw")},
			ceiling{"gomysql", args}, ceiling{"gomysql-text", append(slices.Clone(args), "-text")})
	}
	return out
}

// ceilingRuns is how many times each ceiling reads the load's binlog in
// one benchmark iteration (TRIBUTARY_BENCH_CEILING_RUNS, default 5): a
// read of 1M rows takes well under a second, so one read says little on
// a shared machine; the median of several says more.
func ceilingRuns(b *testing.B) int {
	v := os.Getenv("TRIBUTARY_BENCH_CEILING_RUNS")
	if v == "" {
		return 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("TRIBUTARY_BENCH_CEILING_RUNS=%q: want a count of 1 or more", v)
	}
	return n
}

// streams are the catch-ups' names among the readings.
var streams = []string{"embedded", "kafka"}

// reportReads reports, for each reader of n changes (each ceiling and
// each catch-up): its median rate (changes/s), the spread of its rates
// ((max-min)/median), its median CPU time per change and the cores it
// kept busy (CPU time over wall time); and for each catch-up, its median
// rate as a share of each ceiling's median rate (%-of-) and its CPU time
// per change as a multiple of each ceiling's (cpu-x-).
func reportReads(b *testing.B, n int, reads map[string][]reading, rss map[string]float64) {
	type summary struct{ rate, spread, cpu, cores float64 }
	sums := map[string]summary{}
	for k, rs := range reads {
		rates := make([]float64, len(rs))
		cpus := make([]float64, len(rs))
		cores := make([]float64, len(rs))
		for i, r := range rs {
			rates[i] = float64(n) / r.wall.Seconds()
			cpus[i] = float64(r.cpu.Nanoseconds()) / float64(n)
			cores[i] = r.cpu.Seconds() / r.wall.Seconds()
		}
		s := summary{rate: median(rates), cpu: median(cpus), cores: median(cores)}
		s.spread = 100 * (slices.Max(rates) - slices.Min(rates)) / s.rate
		sums[k] = s
		b.ReportMetric(s.rate, k+"-changes/s")
		b.ReportMetric(s.spread, k+"-spread-%")
		b.ReportMetric(s.cpu, k+"-cpu-ns/change")
		b.ReportMetric(s.cores, k+"-cores")
	}
	for _, st := range streams {
		s, ok := sums[st]
		if !ok {
			continue
		}
		for k, c := range sums {
			if slices.Contains(streams, k) {
				continue
			}
			b.ReportMetric(100*s.rate/c.rate, st+"-%-of-"+k)
			if c.cpu > 0 {
				b.ReportMetric(s.cpu/c.cpu, st+"-cpu-x-"+k)
			}
		}
	}
	for k, v := range rss {
		b.ReportMetric(v, k+"-peak-rss-MB")
	}
}

// median returns the middle of vs (the mean of the two middle ones for an
// even count).
func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// processCPU returns the CPU time (user and system) this process spent so
// far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startCPUProfile starts, with TRIBUTARY_BENCH_CPUPROFILE set, a CPU
// profile of the catch-up into stream alone (not the load, not the
// ceilings), written to that path with the stream's name appended; the
// function returned stops it.
func startCPUProfile(b *testing.B, stream string) func() {
	p := os.Getenv("TRIBUTARY_BENCH_CPUPROFILE")
	if p == "" {
		return func() {}
	}
	f, err := os.Create(p + "." + stream)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// writeHeapProfile writes the live heap to path, for
// TRIBUTARY_BENCH_HEAPPROFILE: what the catch-up holds halfway.
func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	goruntime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func lastBinlog(b *testing.B, d *db) string {
	files := binlogsFrom(b, d, "")
	return files[len(files)-1]
}

// binlogsFrom lists the binlogs from first on ("" for all).
func binlogsFrom(b *testing.B, d *db, first string) []string {
	rows, err := d.sql.Query(`SHOW BINARY LOGS`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		var name string
		rest := make([]any, len(cols)-1)
		for i := range rest {
			rest[i] = new(any)
		}
		if err := rows.Scan(append([]any{&name}, rest...)...); err != nil {
			b.Fatal(err)
		}
		if first == "" || name >= first {
			out = append(out, name)
		}
	}
	return out
}

func dsnParts(b *testing.B, dsn string) (host, port, user, pass string) {
	at := strings.LastIndex(dsn, "@tcp(")
	cred := dsn[:at]
	user, pass, _ = strings.Cut(cred, ":")
	addr := dsn[at+len("@tcp("):]
	addr = addr[:strings.IndexByte(addr, ')')]
	host, port, _ = strings.Cut(addr, ":")
	return host, port, user, pass
}
