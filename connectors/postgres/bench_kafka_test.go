package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// Stages of a change on its way from commit to Ack, as stageClock records
// them.
const (
	stCommit    = iota // the transaction's commit time (Source.CommitTime), taken before its WAL flush
	stRead             // returned by Read: the server's decoding and sending, then the receiver's
	stPublish          // handed to the stream (PublishAsync)
	stDurable          // reported durable by the stream
	stSaveStart        // the checkpoint covering it starts to be saved
	stSaveEnd          // that checkpoint is stored
	stAck              // the Ack covering it
	stages
)

var stageNames = [stages]string{"commit", "read", "publish", "durable", "save", "saved", "ack"}

// stageClock wraps a source and a stream and records, for every change, when
// it passed each stage, so that a latency tail can be traced to the stage
// that makes it.
type stageClock struct {
	core.Source
	name string

	mu    sync.Mutex
	at    []stamps
	byPos map[string]int // position -> change index
	byID  map[string]int // event id -> change index
	saved int            // changes covered by a stored checkpoint
	acked int            // changes covered by an Ack
}

// newStageClock returns a clock for about n changes. Its records are
// allocated up front and hold no pointers, so that neither their growth
// nor their scanning by the GC stalls the run it measures.
func newStageClock(name string, src core.Source, n int) *stageClock {
	return &stageClock{Source: src, name: name, at: make([]stamps, 0, n), byPos: make(map[string]int, n), byID: make(map[string]int, n)}
}

// stamps are a change's stage times in Unix nanoseconds, 0 when unknown.
type stamps [stages]int64

// gap returns the time from stage x to stage y.
func (s stamps) gap(x, y int) time.Duration { return time.Duration(s[y] - s[x]) }

// since returns the time from t to stage st.
func (s stamps) since(t time.Time, st int) time.Duration { return time.Duration(s[st] - t.UnixNano()) }

func (a *stageClock) Read(ctx context.Context) ([]core.Change, error) {
	b, err := a.Source.Read(ctx)
	now := time.Now().UnixNano()
	a.mu.Lock()
	for _, ch := range b {
		i := len(a.at)
		var t stamps
		t[stCommit], t[stRead] = ch.Source.CommitTime.UnixNano(), now
		a.at = append(a.at, t)
		a.byPos[string(ch.Position.Data)] = i
		a.byID[core.EventID(a.name, ch.Position, "r")] = i
	}
	a.mu.Unlock()
	return b, err
}

func (a *stageClock) Ack(ctx context.Context, pos core.Position) error {
	a.mark(pos, stAck, &a.acked, time.Now().UnixNano())
	return a.Source.Ack(ctx, pos)
}

// mark sets stage st of every change up to pos not yet marked.
func (a *stageClock) mark(pos core.Position, st int, done *int, now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.byPos[string(pos.Data)]
	if !ok {
		return
	}
	for ; *done <= i; *done++ {
		a.at[*done][st] = now
	}
}

func (a *stageClock) markIDs(msgs []*message.Message, st int) {
	now := time.Now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range msgs {
		if i, ok := a.byID[m.UUID]; ok {
			a.at[i][st] = now
		}
	}
}

// ackedN returns the number of changes acknowledged.
func (a *stageClock) ackedN() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}

// records returns the stage times of the acknowledged changes.
func (a *stageClock) records() []stamps {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.at[:a.acked])
}

// stream wraps st so that publishes and checkpoint saves are recorded.
func (a *stageClock) stream(st core.Stream) core.Stream { return &clockStream{Stream: st, c: a} }

type clockStream struct {
	core.Stream
	c *stageClock
}

func (s *clockStream) Publisher() message.Publisher {
	return &clockPublisher{Publisher: s.Stream.Publisher(), c: s.c}
}

func (s *clockStream) Checkpoints() core.CheckpointStore {
	return &clockStore{CheckpointStore: s.Stream.Checkpoints(), c: s.c}
}

type clockPublisher struct {
	message.Publisher
	c *stageClock
}

func (p *clockPublisher) PublishAsync(ctx context.Context, topic string, msgs []*message.Message, done func(error)) error {
	p.c.markIDs(msgs, stPublish)
	return p.Publisher.(core.AsyncPublisher).PublishAsync(ctx, topic, msgs, func(err error) {
		if err == nil {
			p.c.markIDs(msgs, stDurable)
		}
		done(err)
	})
}

type clockStore struct {
	core.CheckpointStore
	c *stageClock
}

func (s *clockStore) Save(ctx context.Context, cp core.Checkpoint) error {
	start := time.Now().UnixNano()
	err := s.CheckpointStore.Save(ctx, cp)
	if err == nil {
		end := time.Now().UnixNano()
		s.c.mu.Lock()
		i, ok := s.c.byPos[string(cp.Position.Data)]
		for j := s.c.saved; ok && j <= i; j++ {
			s.c.at[j][stSaveStart], s.c.at[j][stSaveEnd] = start, end
		}
		if ok {
			s.c.saved = i + 1
		}
		s.c.mu.Unlock()
	}
	return err
}

// benchMapper maps each change to one event through the rules engine and
// the catalog, as a configured connector does: one rule, four fields, a
// JSON Schema checked.
func benchMapper(b *testing.B, name string) runtime.Mapper {
	b.Helper()
	cat, err := catalog.New([]core.EventType{{
		Type: "com.example.order.placed", Version: "1",
		Schema: map[string]any{
			"type": "object", "required": []any{"id", "total"},
			"properties": map[string]any{"id": map[string]any{"type": "integer"}, "name": map[string]any{"type": "string"}},
		},
	}}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile(name, []core.Rule{{
		Name: "order_placed", When: `op == "create"`, Type: "com.example.order.placed",
		Subject: "string(after.id)", PartitionKey: "string(after.id)",
		Data: map[string]any{"id": "after.id", "name": "after.name", "total": "after.total", "created": "after.created"},
	}}, cat)
	if err != nil {
		b.Fatal(err)
	}
	return runtime.Rules(set)
}

// benchRuntime returns a runtime streaming src into st as connector name;
// a stageClock source also records the stream's publishes and saves.
func benchRuntime(b *testing.B, st core.Stream, name string, src core.Source) *runtime.Runtime {
	if c, ok := src.(*stageClock); ok {
		st = c.stream(st)
	}
	rt, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "single", Name: "tributary.bench.postgres"},
		Connectors:      []runtime.Connector{{Name: name, Type: "postgres_cdc", Source: src, Mapper: benchMapper(b, name), MaxInFlight: benchInFlight()}},
		StateDir:        b.TempDir(),
		ShutdownTimeout: 30 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	return rt
}

// kafkaRuntime returns a runtime streaming src into Kafka as connector
// name; a fresh name finds no earlier checkpoint. linger is the producer's
// linger, "" for the default (none).
func kafkaRuntime(b *testing.B, name string, src core.Source, linger string) *runtime.Runtime {
	brokers := servicetest.Kafka(b)
	bs := make([]any, len(brokers))
	for i, x := range brokers {
		bs[i] = x
	}
	values := map[string]any{"brokers": bs}
	if linger != "" {
		values["linger"] = linger
	}
	st := kafka.New()
	if err := st.Configure(core.NewConfig("stream", values)); err != nil {
		b.Fatal(err)
	}
	return benchRuntime(b, st, name, src)
}

func benchName() string { return fmt.Sprintf("pgbench_%d", time.Now().UnixNano()) }

// BenchmarkStreamKafka streams TRIBUTARY_BENCH_ROWS single-row inserts in
// 1k-row transactions, committed while the sidecar is down, through the
// runtime into Kafka, until every change's events are durable and their
// checkpoint stored.
func BenchmarkStreamKafka(b *testing.B) {
	runtime.TuneGC() // as tributary run does
	servicetest.Kafka(b)
	d, tb := benchTable(b)
	n := benchRows(b)
	cfg := benchMaxBatch(neverSnapshot(d.config("bench")))
	closeSource(b, openSource(b, cfg, core.Position{})) // publication and slot
	next := 1
	var total time.Duration
	rss := 0.0
	for b.Loop() {
		b.StopTimer()
		loadRows(b, d, tb, next, n)
		next += n
		rt := kafkaRuntime(b, benchName(), newSource(b, cfg), "2ms")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		resetPeakRSS()
		start := time.Now()
		go func() { done <- rt.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Minute)
		for {
			s := rt.Status().Connectors[0]
			if s.EventsEmitted >= uint64(n) && s.InFlight == 0 {
				break
			}
			if time.Now().After(deadline) || s.State == runtime.StateFailed {
				b.Fatalf("stuck: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		rss = max(rss, peakRSS())
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "changes/s")
	b.ReportMetric(rss, "peak-rss-MB")
}

// BenchmarkSteady5k commits 5,000 single-row inserts a second (50-row
// transactions every 10 ms) for TRIBUTARY_BENCH_SECONDS (default 10) while
// the runtime streams them into Kafka, and reports the commit-to-ack
// latency percentiles: from the transaction's commit time to the Ack that
// follows the events' durability and the checkpoint's storage. The
// producer runs with its defaults (no linger): a linger is paid twice per
// change, once for its events and once for the checkpoint after them.
func BenchmarkSteady5k(b *testing.B) {
	servicetest.Kafka(b)
	steady(b, func(b *testing.B, name string, src core.Source) *runtime.Runtime {
		return kafkaRuntime(b, name, src, "")
	})
}

// BenchmarkSteady5kEmbedded is BenchmarkSteady5k into the embedded stream
// (sync full: fsync before ack), which separates Kafka from the rest.
func BenchmarkSteady5kEmbedded(b *testing.B) {
	steady(b, func(b *testing.B, name string, src core.Source) *runtime.Runtime {
		st := embedded.New()
		if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(b.TempDir(), "stream.db")})); err != nil {
			b.Fatal(err)
		}
		return benchRuntime(b, st, name, src)
	})
}

// steady runs the steady 5k/s load through the runtime mk returns and
// reports the commit-to-ack percentiles. With -v it also logs where the
// time goes: each stage's share for all changes and for the slowest 1%,
// the database's own commit times, and how late this process got to run
// (stalls of the machine, not of the code).
func steady(b *testing.B, mk func(b *testing.B, name string, src core.Source) *runtime.Runtime) {
	d, tb := benchTable(b)
	secs := 10
	if v := os.Getenv("TRIBUTARY_BENCH_SECONDS"); v != "" {
		var err error
		if secs, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TRIBUTARY_BENCH_SECONDS: %v", err)
		}
	}
	cfg := neverSnapshot(d.config("bench"))
	closeSource(b, openSource(b, cfg, core.Position{}))
	next := 1
	var all []stamps
	var rate float64
	var first time.Duration
	for b.Loop() {
		name := benchName()
		clock := newStageClock(name, newSource(b, cfg), 5000*(secs+2)+1000)
		rt := mk(b, name, clock)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Run(ctx) }()
		for rt.Status().Connectors[0].State != runtime.StateRunning {
			time.Sleep(10 * time.Millisecond)
		}
		// The first publish to a topic checks it (describe, metadata) and
		// opens the producer's connection to its leader: a one-off of a
		// few hundred milliseconds, reported as first-ack-ms. The load runs
		// for steadyWarmup first; only changes committed after it count in
		// the percentiles.
		tick := time.NewTicker(10 * time.Millisecond)
		start := time.Now()
		hiccups := func() []int { return nil }
		if testing.Verbose() {
			hiccups = startHiccups()
		}
		rows, bursts := 0, 0
		var commits []time.Duration // insert and commit, as the client waits
		for time.Since(start) < steadyWarmup+time.Duration(secs)*time.Second {
			<-tick.C
			// Catch up on ticks a slow commit missed, 50 rows per transaction.
			txns := 0
			for due := int(time.Since(start).Seconds() * 5000); rows+50 <= due; rows += 50 {
				t0 := time.Now()
				d.exec(b, sprintf(`insert into %s select g, 'order ' || g, g * 1.25, now() from generate_series(%d, %d) g`, tb, next, next+49))
				commits = append(commits, time.Since(t0))
				next += 50
				txns++
			}
			if txns > 1 {
				bursts++
			}
		}
		tick.Stop()
		if h := hiccups(); h != nil {
			b.Logf("scheduling hiccups (a 1 ms sleep's overshoot), worst per second after start, ms: %v", h)
		}
		rate = float64(rows) / time.Since(start).Seconds()
		deadline := time.Now().Add(time.Minute)
		for clock.ackedN() < rows && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := clock.ackedN(); n < rows {
			b.Errorf("%d of %d changes acknowledged: %+v", n, rows, rt.Status().Connectors[0])
		}
		cancel()
		if err := <-done; err != nil {
			b.Errorf("runtime: %v", err)
		}
		recs := clock.records()
		if len(recs) > 0 {
			first = max(first, recs[0].gap(stCommit, stAck))
		}
		from := start.Add(steadyWarmup)
		i, _ := slices.BinarySearchFunc(recs, from.UnixNano(), func(r stamps, t int64) int { return cmp.Compare(r[stCommit], t) })
		slices.Sort(commits)
		b.Logf("insert+commit p50 %.1f p99 %.1f max %.1f ms; %d ticks caught up on missed ones",
			ms(pct(commits, .5)), ms(pct(commits, .99)), ms(pct(commits, 1)), bursts)
		logStages(b, from, recs[i:])
		all = append(all, recs[i:]...)
	}
	if len(all) == 0 {
		b.Fatal("no change acknowledged")
	}
	lat := make([]time.Duration, len(all))
	for i, r := range all {
		lat[i] = r.gap(stCommit, stAck)
	}
	slices.Sort(lat)
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(ms(pct(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(pct(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(pct(lat, 1)), "max-ms")
	b.ReportMetric(ms(first), "first-ack-ms")
}

// startHiccups measures how late this process gets to run: a goroutine
// sleeps 1 ms at a time and notes the overshoot. The returned func stops
// it and returns the worst overshoot of each second, in milliseconds. On
// a machine shared with other work, stalls of every stage at once line up
// with these.
func startHiccups() func() []int {
	stop := make(chan struct{})
	res := make(chan []int)
	go func() {
		var worst []int
		start := time.Now()
		for {
			select {
			case <-stop:
				res <- worst
				return
			default:
			}
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			over := time.Since(t0) - time.Millisecond
			sec := int(t0.Sub(start).Seconds())
			for len(worst) <= sec {
				worst = append(worst, 0)
			}
			worst[sec] = max(worst[sec], int(over.Milliseconds()))
		}
	}()
	return func() []int {
		close(stop)
		return <-res
	}
}

// steadyWarmup is the start of a steady run left out of its percentiles.
const steadyWarmup = time.Second

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[int(p*float64(len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// logStages logs, for each stage, the time since the previous one: its
// p50/p99/max over all changes and its median over the slowest 1%, and
// when (seconds after start) the slowest changes were committed.
func logStages(b *testing.B, start time.Time, recs []stamps) {
	if len(recs) == 0 {
		return
	}
	total := func(r stamps) time.Duration { return r.gap(stCommit, stAck) }
	slow := slices.Clone(recs)
	slices.SortFunc(slow, func(x, y stamps) int { return cmp.Compare(total(y), total(x)) })
	slow = slow[:max(1, len(slow)/100)]
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d changes; stage gaps in ms: p50 p99 max | median of slowest 1%%\n", len(recs))
	for st := stRead; st < stages; st++ {
		gap := func(rs []stamps) []time.Duration {
			out := make([]time.Duration, 0, len(rs))
			for _, r := range rs {
				if r[st] != 0 && r[st-1] != 0 {
					out = append(out, r.gap(st-1, st))
				}
			}
			slices.Sort(out)
			return out
		}
		g, gs := gap(recs), gap(slow)
		if len(g) == 0 || len(gs) == 0 {
			continue
		}
		fmt.Fprintf(&sb, "  %-8s->%-8s %7.1f %7.1f %7.1f | %7.1f\n", stageNames[st-1], stageNames[st],
			ms(pct(g, .5)), ms(pct(g, .99)), ms(pct(g, 1)), ms(pct(gs, .5)))
	}
	seen := map[int]int{}
	for _, r := range slow {
		seen[int(r.since(start, stCommit).Seconds())]++
	}
	fmt.Fprintf(&sb, "  slowest 1%% by second committed: %v\n", seen)
	for i := 0; i < len(slow); i += max(1, len(slow)/5) {
		r := slow[i]
		fmt.Fprintf(&sb, "  slowest #%d, committed at %.3fs:", i, r.since(start, stCommit).Seconds())
		for st := stRead; st < stages; st++ {
			fmt.Fprintf(&sb, " %s %+.1f", stageNames[st], ms(r.gap(stCommit, st)))
		}
		sb.WriteString("\n")
	}
	b.Log(sb.String())
}
