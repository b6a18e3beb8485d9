// Package sinkbench is the harness of the sinks' runtime benchmarks: a
// stream of the kind a benchmark names (in-memory, embedded or the real
// Kafka), events of about 1 KB appended before the runtime starts, a
// runtime with the sink under test, its status, and the process's CPU
// time. Benchmarks of different sinks share it so that their figures are
// measured the same way.
package sinkbench

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

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

// Type is the event type of the benchmarks' events.
const Type = "com.example.order.accepted"

// Keys is how many partition keys the events have, in turn.
const Keys = 64

// Stream returns a configured, unopened stream named "memory", "embedded"
// or "kafka" (the broker of scripts/services), a state directory, and
// topics of the benchmark's own (a fresh prefix: Kafka keeps what earlier
// runs wrote).
func Stream(tb testing.TB, name string) (core.Stream, string, runtime.Topics) {
	tb.Helper()
	topics := runtime.Topics{Mode: "per_type", Prefix: "bench-" + watermill.NewShortUUID() + "."}
	var st core.Stream
	values := map[string]any{}
	switch name {
	case "memory":
		return memstream.New(), tb.TempDir(), topics
	case "embedded":
		st = embedded.New()
	case "kafka":
		st = kafka.New()
		var brokers []any
		for _, br := range servicetest.Kafka(tb) {
			brokers = append(brokers, br)
		}
		values["brokers"] = brokers
	default:
		tb.Fatalf("unknown stream %q: memory, embedded or kafka", name)
	}
	if err := st.Configure(core.NewConfig("stream", values)); err != nil {
		tb.Fatalf("configure the %s stream: %v", name, err)
	}
	return st, tb.TempDir(), topics
}

// Events returns n events of about 1 KB of JSON data with ids as
// connectors derive them (name-based UUIDs, in no order; the id's name
// starts with prefix), keys order-0 .. order-63 in turn, one millisecond
// apart.
func Events(prefix string, n int) []*core.Event {
	pad := strings.Repeat("x", 1024-110)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*core.Event, n)
	for i := range out {
		key := "order-" + strconv.Itoa(i%Keys)
		out[i] = &core.Event{
			ID:     core.EventID("erp_orders", core.Position{Version: 1, Data: []byte(prefix + strconv.Itoa(i))}, "accepted"),
			Source: "/tributary/erp_orders", SpecVersion: core.SpecVersion,
			Type: Type, Subject: key, PartitionKey: key, DataContentType: "application/json",
			Time: t0.Add(time.Duration(i) * time.Millisecond),
			Data: fmt.Appendf(nil, `{"order_id":%q,"seq":%d,"total":"129.90","currency":"EUR","note":%q}`, key, i, pad),
		}
	}
	return out
}

// Prefill opens st in dir, appends evs to topic, waits until every one is
// durable, and closes st again for the runtime to open. A memstream is
// filled without opening it.
func Prefill(tb testing.TB, st core.Stream, dir, topic string, evs []*core.Event) {
	tb.Helper()
	if ms, ok := st.(*memstream.Stream); ok {
		for i := 0; i < len(evs); i += 512 {
			msgs := make([]*message.Message, 0, 512)
			for _, ev := range evs[i:min(i+512, len(evs))] {
				msgs = append(msgs, ev.ToMessage())
			}
			if err := ms.Publisher().Publish(topic, msgs...); err != nil {
				tb.Fatalf("publish: %v", err)
			}
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := st.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		tb.Fatalf("open the stream: %v", err)
	}
	Publish(tb, st, topic, evs)
	if err := st.Close(ctx); err != nil {
		tb.Fatalf("close the stream: %v", err)
	}
}

// Publish appends evs to topic of the open stream st in batches of 512
// and waits until every one is durable.
func Publish(tb testing.TB, st core.Stream, topic string, evs []*core.Event) {
	tb.Helper()
	pub, ok := st.Publisher().(core.EventPublisher)
	if !ok {
		tb.Fatalf("the stream's publisher (%T) does not publish events", st.Publisher())
	}
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := 0; i < len(evs); i += 512 {
		wg.Add(1)
		if err := pub.PublishEvents(context.Background(), topic, evs[i:min(i+512, len(evs))], func(err error) {
			if err != nil {
				failed.Store(err)
			}
			wg.Done()
		}); err != nil {
			tb.Fatalf("publish: %v", err)
		}
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("publish: %v", err)
	}
}

// Run starts a runtime on st (which it opens, in dir) with sinks, topics
// of Type, and stops it when tb ends.
func Run(tb testing.TB, st core.Stream, dir string, topics runtime.Topics, sinks ...runtime.Sink) *runtime.Runtime {
	tb.Helper()
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          topics,
		EventTypes:      []string{Type},
		Sinks:           sinks,
		StateDir:        dir,
		Registerer:      prometheus.NewRegistry(),
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second,
		DrainTimeout:    5 * time.Second,
	})
	if err != nil {
		tb.Fatalf("runtime.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Error("Run did not return within 30s of the cancel")
		}
	})
	return r
}

// Status returns the status of the sink called name.
func Status(r *runtime.Runtime, name string) runtime.SinkStatus {
	for _, s := range r.Status().Sinks {
		if s.Name == name {
			return s
		}
	}
	return runtime.SinkStatus{}
}

// WaitDelivered waits until the sink called name counts n events
// delivered, and fails the benchmark when one is dead-lettered or none
// comes within d.
func WaitDelivered(tb testing.TB, r *runtime.Runtime, name string, n int, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		st := Status(r, name)
		if st.Delivered >= uint64(n) {
			return
		}
		if st.DeadLettered != 0 || time.Now().After(deadline) {
			tb.Fatalf("%d of %d events delivered; status %+v", st.Delivered, n, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// CPUTime returns the CPU time the process has used so far: a figure
// that other work on a shared machine distorts less than wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
