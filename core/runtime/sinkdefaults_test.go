package runtime_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
)

// batchingSink declares its own write defaults and records the size of
// each Write.
type batchingSink struct {
	recSink
	batch, conc int

	sizes sync.Mutex
	most  int
}

func (s *batchingSink) WriteDefaults() (int, int) { return s.batch, s.conc }

func (s *batchingSink) Write(ctx context.Context, ds []core.Delivery) []core.Result {
	s.sizes.Lock()
	s.most = max(s.most, len(ds))
	s.sizes.Unlock()
	return s.recSink.Write(ctx, ds)
}

var _ core.BatchingSink = (*batchingSink)(nil)

func TestSinkWriteDefaults(t *testing.T) {
	for _, tc := range []struct {
		name               string
		maxBatch, conc     int // the sink's configuration; 0 leaves it out
		wantBatch, wantMax int // the largest Write, the most Writes at once
	}{
		{name: "the sink's own when left out", wantBatch: 3, wantMax: 1},
		{name: "the configuration's when given", maxBatch: 5, conc: 4, wantBatch: 5, wantMax: 4},
		{name: "the sink's batch, the configuration's concurrency", conc: 4, wantBatch: 3, wantMax: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const typ = "com.acme.order"
			var evs []*core.Event
			for n := range 12 {
				for k := range 6 {
					evs = append(evs, sinkEvent(typ, fmt.Sprintf("k%d", k), n))
				}
			}
			st := memstream.New()
			publishEvents(t, st, evs...)
			sink := &batchingSink{batch: 3, conc: 1}
			sink.answer = func(context.Context, core.Delivery) core.Result {
				time.Sleep(time.Millisecond)
				return core.Result{Status: core.StatusDelivered}
			}
			run := runSinks(t, st, []string{typ}, nil, runtime.Sink{Name: "orders", Type: "test", Sink: sink, MaxBatch: tc.maxBatch, Concurrency: tc.conc, From: core.FromBeginning})
			eventually(t, "every event delivered", func() bool { return len(sink.deliveredIDs()) >= len(evs) })
			if err := run.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			sink.sizes.Lock()
			most := sink.most
			sink.sizes.Unlock()
			if most != tc.wantBatch {
				t.Errorf("the largest Write held %d deliveries, want %d", most, tc.wantBatch)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if sink.maxCalls > tc.wantMax {
				t.Errorf("%d Writes at once, want at most %d", sink.maxCalls, tc.wantMax)
			}
			if tc.wantMax > 1 && sink.maxCalls < 2 {
				t.Errorf("at most %d Write at once, want up to %d", sink.maxCalls, tc.wantMax)
			}
		})
	}
}
