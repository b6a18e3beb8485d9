package filesink_test

import (
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/filesink"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/sinkbench"
)

// BenchmarkSinkRuntime measures events/s written by the files sink (JSON
// Lines of the CloudEvents) through the sink runtime from the embedded
// stream: b.N 1 KB events of 64 keys are appended first, then the runtime
// starts; the time runs until the sink's status counts every event
// delivered. Each Write waits for its file, so a file completes each time
// the runtime's Writes all wait and no event comes for linger (20ms by
// default). "defaults" is the runtime's and the sink's defaults;
// "batch1000" sets max_batch: 1000 and max_events: 16000.
func BenchmarkSinkRuntime(b *testing.B) {
	for _, v := range []struct {
		name      string
		batch     int
		maxEvents int
	}{{"defaults", 0, 100000}, {"batch1000", 1000, 16000}} {
		b.Run(v.name, func(b *testing.B) {
			st, dir, topics := sinkbench.Stream(b, "embedded")
			evs := sinkbench.Events("files", b.N)
			sinkbench.Prefill(b, st, dir, topics.For(sinkbench.Type), evs)
			s := filesink.New()
			if err := s.Configure(core.NewConfig("drop", map[string]any{"dir": b.TempDir(), "max_events": v.maxEvents})); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(evs[0].Data)))
			b.ResetTimer()
			start := time.Now()
			r := sinkbench.Run(b, st, dir, topics, runtime.Sink{Name: "drop", Type: filesink.Type, Sink: s, From: core.FromBeginning, MaxBatch: v.batch})
			sinkbench.WaitDelivered(b, r, "drop", b.N, 60*time.Second+time.Duration(b.N)*10*time.Millisecond)
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
