package runtime_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/runtime"
)

// replayBase is the time of the first event of replay tests: event n of a
// key is at replayBase + n minutes.
var replayBase = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func replayEvent(typ, key string, n int) *core.Event {
	ev := sinkEvent(typ, key, n)
	ev.Time = replayBase.Add(time.Duration(n) * time.Minute)
	return ev
}

// embeddedAt returns a configured embedded stream on the file in dir;
// each call gives a new value on the same file.
func embeddedAt(t *testing.T, dir string) *embedded.Stream {
	t.Helper()
	st := embedded.New()
	if err := st.Configure(core.NewConfig("stream", map[string]any{"path": filepath.Join(dir, "stream.db")})); err != nil {
		t.Fatal(err)
	}
	return st
}

// publishTo opens the embedded stream in dir, publishes evs and closes it.
func publishTo(t *testing.T, dir string, evs ...*core.Event) {
	t.Helper()
	st := embeddedAt(t, dir)
	ctx := context.Background()
	if err := st.Open(ctx, core.Env{Name: "stream", StateDir: dir}); err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for _, ev := range evs {
		if err := st.Publisher().Publish(sinkTopicPrefix+ev.Type, ev.ToMessage()); err != nil {
			t.Fatalf("publish %s: %v", ev.ID, err)
		}
	}
}

// replayRuntime returns a runtime that is not run, on the embedded stream
// in dir, with one sink "out" of sink reading types.
func replayRuntime(t *testing.T, dir string, sink core.Sink, types []string) *runtime.Runtime {
	t.Helper()
	r, err := runtime.New(runtime.Options{
		StateDir:        dir,
		Stream:          embeddedAt(t, dir),
		Topics:          runtime.Topics{Mode: "per_type", Prefix: sinkTopicPrefix},
		EventTypes:      types,
		Sinks:           []runtime.Sink{{Name: "out", Sink: sink, From: core.FromBeginning, Retry: []time.Duration{10 * time.Millisecond}}},
		ShutdownTimeout: 4 * time.Second,
		DrainTimeout:    2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReplaySinkByTimeRange: a replay of a time range delivers exactly
// the events of that range again, marked as replays, in key order,
// merged across the topics of two types; a dry run delivers nothing and
// counts them; and the sink's consumer group is where it was, so that the
// next run delivers only the events published since.
func TestReplaySinkByTimeRange(t *testing.T) {
	dir := t.TempDir()
	types := []string{"com.test.a", "com.test.b"}
	var all []*core.Event
	for n := range 6 {
		for _, key := range []string{"k1", "k2", "k3"} {
			all = append(all, replayEvent(types[n%2], key, n))
		}
	}
	publishTo(t, dir, all...)

	// A normal run delivers every event once and commits.
	live := &recSink{}
	run := func() {
		t.Helper()
		r := replayRuntime(t, dir, live, types)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		eventually(t, "the normal run to deliver", func() bool { return len(live.deliveredIDs()) == len(all) })
		// Let the commit of the last acks land before stopping.
		time.Sleep(300 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	run()

	f := runtime.ReplayFilter{Since: replayBase.Add(2 * time.Minute), Until: replayBase.Add(5 * time.Minute)}
	var want []string
	for _, ev := range all {
		if f.Since.Compare(ev.Time) <= 0 && ev.Time.Before(f.Until) {
			want = append(want, ev.ID)
		}
	}

	dry := &recSink{}
	var listed []string
	df := f
	df.DryRun = true
	rep, err := replayRuntime(t, dir, dry, types).ReplaySink(context.Background(), "out", df, runtime.ReplayOptions{
		List: func(ev *core.Event, _ bool) { listed = append(listed, ev.ID) },
	})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if rep.Count != int64(len(want)) || rep.Matched != int64(len(want)) || len(dry.attempts) != 0 || dry.opens != 0 {
		t.Errorf("dry run: %+v, %d deliveries, %d opens; want a count of %d and nothing delivered or opened", rep, len(dry.attempts), dry.opens, len(want))
	}
	if !sameIDs(listed, want) {
		t.Errorf("dry run listed %v, want %v", listed, want)
	}

	again := &recSink{}
	rep, err = replayRuntime(t, dir, again, types).ReplaySink(context.Background(), "out", f, runtime.ReplayOptions{})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	got := again.deliveredIDs()
	if !sameIDs(got, want) || rep.Count != int64(len(want)) {
		t.Fatalf("replay delivered %v (count %d), want exactly %v", got, rep.Count, want)
	}
	for _, d := range again.delivered {
		if !d.Replay {
			t.Errorf("delivery of %s has Replay false", d.Event.ID)
		}
	}
	checkKeyOrder(t, again.delivered)
	if again.opens != 1 || again.closes < 1 {
		t.Errorf("sink opened %d and closed %d times, want once and closed", again.opens, again.closes)
	}

	// The group did not move: the next run delivers only the new events.
	fresh := []*core.Event{replayEvent(types[0], "k1", 6), replayEvent(types[1], "k2", 7)}
	publishTo(t, dir, fresh...)
	all = append(all, fresh...)
	run()
	if ids := live.deliveredIDs(); !sameIDs(ids, ids5(all)) {
		t.Errorf("normal deliveries after the replay: %v, want every event once: %v", ids, ids5(all))
	}
	for _, d := range live.delivered {
		if d.Replay {
			t.Errorf("normal delivery of %s has Replay true", d.Event.ID)
		}
	}
}

// TestReplaySinkFromArchive: events older than the oldest the stream
// holds come from the archive, first; one both hold goes once.
func TestReplaySinkFromArchive(t *testing.T) {
	dir := t.TempDir()
	types := []string{"com.test.a"}
	onStream := []*core.Event{replayEvent(types[0], "k1", 3), replayEvent(types[0], "k1", 4)}
	publishTo(t, dir, onStream...)
	// The stream's third event happened before its first: the archive,
	// asked for what is older than the first, holds it too.
	late := replayEvent(types[0], "k2", 2)
	late.Time = replayBase.Add(90 * time.Second)
	publishTo(t, dir, late)
	archived := []*core.Event{replayEvent(types[0], "k1", 1), late, replayEvent(types[0], "k1", 2)}
	archive := &fakeArchive{events: archived}
	sink := &recSink{}
	rep, err := replayRuntime(t, dir, sink, types).ReplaySink(context.Background(), "out", runtime.ReplayFilter{Since: replayBase}, runtime.ReplayOptions{Archive: archive})
	if err != nil {
		t.Fatal(err)
	}
	// Keys go in parallel: each key's events in order, each event once.
	var k1, k2 []string
	for _, id := range sink.deliveredIDs() {
		if strings.Contains(id, "/k2/") {
			k2 = append(k2, id)
		} else {
			k1 = append(k1, id)
		}
	}
	want1 := []string{archived[0].ID, archived[2].ID, onStream[0].ID, onStream[1].ID}
	if !slices.Equal(k1, want1) || !slices.Equal(k2, []string{late.ID}) || rep.FromArchive != 3 || rep.Count != 5 {
		t.Errorf("delivered %v and %v (%+v), want %v and %v with 3 from the archive", k1, k2, rep, want1, []string{late.ID})
	}
	asked := archive.asked
	if !asked.Since.Equal(replayBase) || !asked.Until.Equal(onStream[0].Time) {
		t.Errorf("archive asked for %s to %s, want %s to the oldest event on the stream %s", asked.Since, asked.Until, replayBase, onStream[0].Time)
	}
}

// TestReplaySinkErrors: unknown and disabled sinks, an empty time range,
// and a paused sink of a running runtime.
func TestReplaySinkErrors(t *testing.T) {
	dir := t.TempDir()
	r := replayRuntime(t, dir, &recSink{}, []string{"com.test.a"})
	ctx := context.Background()
	if _, err := r.ReplaySink(ctx, "nope", runtime.ReplayFilter{}, runtime.ReplayOptions{}); !errors.Is(err, runtime.ErrNoSink) {
		t.Errorf("unknown sink: %v, want ErrNoSink", err)
	}
	if _, err := r.ReplaySink(ctx, "out", runtime.ReplayFilter{Since: replayBase, Until: replayBase}, runtime.ReplayOptions{}); err == nil {
		t.Error("an empty time range was accepted")
	}

	st := embeddedAt(t, t.TempDir())
	sink := &recSink{}
	run := runSinksOn(t, st, runtime.Sink{Name: "out", Sink: sink, From: core.FromBeginning})
	eventually(t, "the sink to run", func() bool { return run.sink(t, "out").State == runtime.StateRunning })
	if err := run.r.PauseSink("out"); err != nil {
		t.Fatal(err)
	}
	if _, err := run.r.ReplaySink(ctx, "out", runtime.ReplayFilter{}, runtime.ReplayOptions{}); !errors.Is(err, runtime.ErrSinkNotRunning) {
		t.Errorf("paused sink: %v, want ErrSinkNotRunning", err)
	}
	if err := run.r.ResumeSink("out"); err != nil {
		t.Fatal(err)
	}
	ev := replayEvent("com.test.a", "k", 1)
	if err := st.Publisher().Publish(sinkTopicPrefix+ev.Type, ev.ToMessage()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the live delivery", func() bool { return len(sink.deliveredIDs()) == 1 })
	rep, err := run.r.ReplaySink(ctx, "out", runtime.ReplayFilter{}, runtime.ReplayOptions{})
	if err != nil || rep.Count != 1 {
		t.Fatalf("replay in a running runtime: %+v, %v", rep, err)
	}
	if ds := sink.attemptsOf(ev.ID); len(ds) != 2 || ds[0].Replay || !ds[1].Replay {
		t.Errorf("deliveries of %s: %+v, want a live one then a replay", ev.ID, ds)
	}
}

// runSinksOn runs a runtime with sinks on an embedded stream, topics per
// type over com.test.a.
func runSinksOn(t *testing.T, st core.Stream, sinks ...runtime.Sink) *sinkRun {
	t.Helper()
	r, err := runtime.New(runtime.Options{
		Stream:          st,
		Topics:          runtime.Topics{Mode: "per_type", Prefix: sinkTopicPrefix},
		EventTypes:      []string{"com.test.a"},
		Sinks:           sinks,
		ShutdownTimeout: 4 * time.Second,
		DrainTimeout:    2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := func() error { cancel(); return <-done }
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &sinkRun{r: r, stop: stop}
}

// sameIDs reports whether got holds exactly the ids of want, each once.
func sameIDs(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

// checkKeyOrder fails when the deliveries of a key are not in the order
// of their times.
func checkKeyOrder(t *testing.T, ds []core.Delivery) {
	t.Helper()
	last := map[string]time.Time{}
	for _, d := range ds {
		k := d.Event.PartitionKey
		if d.Event.Time.Before(last[k]) {
			t.Errorf("key %s: %s delivered after a later event", k, d.Event.ID)
		}
		last[k] = d.Event.Time
	}
}

// fakeArchive is a ReplayArchive of events, which it gives in their
// order whatever the filter's types and subject (as the runtime must not
// count on), within the filter's time range.
type fakeArchive struct {
	events []*core.Event
	asked  runtime.ReplayFilter
}

func (a *fakeArchive) Events(_ context.Context, f runtime.ReplayFilter, fn func(*core.Event) error) error {
	a.asked = f
	for _, ev := range a.events {
		if (!f.Since.IsZero() && ev.Time.Before(f.Since)) || (!f.Until.IsZero() && !ev.Time.Before(f.Until)) {
			continue
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}

func (a *fakeArchive) Holds(_ context.Context, id string) (bool, error) {
	for _, ev := range a.events {
		if ev.ID == id {
			return true, nil
		}
	}
	return false, nil
}
