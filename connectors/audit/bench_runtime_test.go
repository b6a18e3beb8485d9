package audit_test

import (
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/audit"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/sinkbench"
)

// BenchmarkSinkRuntime measures events/s logged by the audit sink into
// SQLite (its default, in the state directory, sync: full) through the
// sink runtime with its defaults (16 Writes of at most 64 deliveries at
// once): b.N 1 KB events of 64 keys are appended to the stream first,
// then the runtime starts and logs them all; the time runs from the start
// of the runtime until the sink's status counts every event delivered.
// "memory" reads the in-memory stream, to show the sink and the runtime
// alone; "embedded" reads the embedded stream, which then shares the two
// cores. One op is one event. The target is 50k events/s on a
// 2-core machine.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, stream := range []string{"memory", "embedded"} {
		b.Run(stream, func(b *testing.B) {
			st, dir, topics := sinkbench.Stream(b, stream)
			evs := sinkbench.Events("audit", b.N)
			sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
			s := audit.New()
			if err := s.Configure(core.NewConfig("audit_log", map[string]any{})); err != nil {
				b.Fatalf("configure the audit sink: %v", err)
			}
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start, cpu := time.Now(), sinkbench.CPUTime()
			r := sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "audit_log", Type: audit.Type, Sink: s, From: core.FromBeginning})
			sinkbench.WaitDelivered(b, r, "audit_log", b.N, 30*time.Second+time.Duration(b.N)*time.Millisecond)
			elapsed, cpu := time.Since(start), sinkbench.CPUTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}
