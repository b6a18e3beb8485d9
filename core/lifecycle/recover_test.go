package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/catalog"
	"github.com/tributary/tributary/core/lifecycle"
	"github.com/tributary/tributary/core/statedb"
)

// errCrash stops a snapshot at a crash point.
var errCrash = errors.New("crash")

// state is what a tracker tells of every instance: the list and each
// trace.
func state(t *testing.T, tr *lifecycle.Tracker, ids []string) map[string]lifecycle.Instance {
	t.Helper()
	ctx := context.Background()
	out := map[string]lifecycle.Instance{}
	for _, id := range ids {
		in, err := tr.Trace(ctx, "order", id)
		if errors.Is(err, lifecycle.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("trace %s: %v", id, err)
		}
		out[id] = *in
	}
	list, err := tr.List(ctx, lifecycle.Query{Entity: "order"})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		got := out[in.ID]
		got.Timeline = nil
		if !reflect.DeepEqual(got, in) {
			t.Errorf("List has %+v, Trace %+v", in, got)
		}
	}
	return out
}

// openTracker opens a tracker of the order machine with cfg.
func openTracker(t *testing.T, cfg lifecycle.Config) *lifecycle.Tracker {
	t.Helper()
	cfg.Machines, cfg.Tick = machines(t), time.Hour
	tr := lifecycle.New(cfg)
	if err := tr.Open(context.Background(), core.Env{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

// history is the events of orders 0..n-1 in three phases: each phase
// moves every order one step, order 3 breaks the machine (shipped before
// billed), and order 5 stays billed past its limit.
func history(n, phase int, at time.Time) []core.Delivery {
	types := []string{"com.acme.order.accepted", "com.acme.order.billed", "com.acme.order.shipped"}
	var ds []core.Delivery
	for i := range n {
		typ := types[phase]
		if i == 3 && phase == 1 {
			typ = "com.acme.order.shipped"
		}
		if i == 5 && phase == 2 {
			continue
		}
		id := "O-" + strconv.Itoa(i)
		ds = append(ds, event(fmt.Sprintf("p%d-%s", phase, id), typ, id, "sys"+strconv.Itoa(phase), at.Add(time.Duration(phase)*time.Minute)))
	}
	return ds
}

// TestTrackerRecoversAtEachStepOfASnapshot stops the tracker (a crash:
// Close writes nothing the store does not hold already) with a snapshot
// interrupted at each of its steps, some events judged after it and some
// still held, and checks that the tracker that opens next tells the same
// of every instance, that `tributary trace` reading the files alone does
// too, and that the whole history delivered again changes nothing.
func TestTrackerRecoversAtEachStepOfASnapshot(t *testing.T) {
	tests := []struct {
		name string
		// first: a snapshot completes after the first phase; crashAt: the
		// step the snapshot after the second phase stops at ("" for
		// none, "-" for no snapshot).
		first   bool
		crashAt string
	}{
		{name: "no snapshot", crashAt: "-"},
		{name: "first snapshot stops before its rows", crashAt: "writing"},
		{name: "first snapshot written, not renamed", crashAt: "written"},
		{name: "first snapshot renamed, directory not synced", crashAt: "renamed"},
		{name: "first snapshot complete", crashAt: ""},
		{name: "second snapshot stops before its rows", first: true, crashAt: "writing"},
		{name: "second snapshot written, not renamed", first: true, crashAt: "written"},
		{name: "second snapshot complete", first: true, crashAt: ""},
	}
	const n = 40
	ids := make([]string, n+1)
	for i := range ids {
		ids[i] = "O-" + strconv.Itoa(i)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			clk := &clock{t: base}
			rec := &recorder{}
			tr := openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now, Publish: rec.publish, SnapshotEvery: -1})
			write(t, tr, history(n, 0, base)...)
			clk.add(3 * time.Second)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if tt.first {
				if err := tr.Snapshot(ctx); err != nil {
					t.Fatal(err)
				}
			}
			write(t, tr, history(n, 1, base)...)
			clk.add(3 * time.Second)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			// Order 5 stays billed past its 2h limit and is reported.
			clk.add(2*time.Hour + time.Minute)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			if tt.crashAt != "-" {
				lifecycle.SetCrashPoint(tr, func(step string) error {
					if step == tt.crashAt {
						return errCrash
					}
					return nil
				})
				if err := tr.Snapshot(ctx); !errors.Is(err, errCrash) && (tt.crashAt != "" || err != nil) {
					t.Fatalf("snapshot stopped at %q: %v", tt.crashAt, err)
				}
			}
			// Judged after the snapshot, and held at the crash.
			write(t, tr, history(n, 2, base)[:n/2]...)
			clk.add(3 * time.Second)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			write(t, tr, history(n, 2, base)[n/2:]...)
			write(t, tr, event("new-1", "com.acme.order.accepted", ids[n], "erp", clk.now()))
			before := state(t, tr, ids)
			published := len(rec.types())
			if len(before) != n+1 || before["O-5"].State != "billed" || !before["O-5"].Stuck || before["O-3"].Timeline[1].Verdict != lifecycle.ReasonUnexpected {
				t.Fatalf("before the crash: %+v", before)
			}
			if err := tr.Close(ctx); err != nil {
				t.Fatal(err)
			}

			st, err := lifecycle.OpenStoreReadOnly(ctx, filepath.Join(dir, lifecycle.StoreFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				in, err := st.Trace(ctx, "order", id)
				if err != nil {
					t.Fatalf("trace %s from the files: %v", id, err)
				}
				if !reflect.DeepEqual(*in, before[id]) {
					t.Errorf("trace %s from the files:\n%+v\nwant\n%+v", id, *in, before[id])
				}
			}
			st.Close()

			tr = openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now, Publish: rec.publish, SnapshotEvery: -1})
			if after := state(t, tr, ids); !reflect.DeepEqual(after, before) {
				for _, id := range ids {
					if !reflect.DeepEqual(after[id], before[id]) {
						t.Errorf("%s after the crash:\n%+v\nwant\n%+v", id, after[id], before[id])
					}
				}
			}
			// The held events are judged (and resolve the stuck orders
			// they ship); then the whole history again, as a consumer
			// group that lost its offsets would deliver it, changes
			// nothing.
			clk.add(3 * time.Second)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			published = len(rec.types())
			for phase := range 3 {
				write(t, tr, history(n, phase, base)...)
			}
			write(t, tr, event("new-1", "com.acme.order.accepted", ids[n], "erp", clk.now()))
			clk.add(3 * time.Second)
			if err := tr.Step(ctx); err != nil {
				t.Fatal(err)
			}
			after := state(t, tr, ids)
			for _, id := range ids {
				if got, want := len(after[id].Timeline), len(before[id].Timeline); got != want {
					t.Errorf("%s: %d events after the redelivery, want %d", id, got, want)
				}
			}
			if got := rec.types(); len(got) != published {
				t.Errorf("published %v after the redelivery, want nothing more than %d", got[published:], published)
			}
			if in := after["O-7"]; in.State != "shipped" || in.Timeline[2].Verdict != "ok" {
				t.Errorf("O-7 after its held event was judged: %+v", in)
			}
			if _, err := os.Stat(filepath.Join(dir, lifecycle.SnapshotFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the unfinished snapshot is left: %v", err)
			}
		})
	}
}

// TestTrackerSkipsRedelivery delivers events again (in one call, and
// after a crash between storing them and committing the offsets, both
// before and after they were judged) and checks that each is stored and
// judged once, even for an instance whose many events fill the bits that
// tell a new event id from one already seen.
func TestTrackerSkipsRedelivery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: base}
	rec := &recorder{}
	tr := newTracker(t, dir, clk, rec)
	acc := event("a1", "com.acme.order.accepted", "R-1", "erp", base)
	write(t, tr, acc, acc)
	tr.Close(ctx)
	tr = newTracker(t, dir, clk, rec)
	write(t, tr, acc) // held, not yet judged
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, tr, acc) // judged
	// 300 second shipments: each a violation, all distinct.
	var ships []core.Delivery
	for i := range 300 {
		ships = append(ships, event("s"+strconv.Itoa(i), "com.acme.order.shipped", "R-1", "wms", base.Add(time.Duration(i+1)*time.Second)))
	}
	write(t, tr, ships...)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Close(ctx)
	tr = newTracker(t, dir, clk, rec)
	write(t, tr, ships...)
	write(t, tr, acc)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	in, err := tr.Trace(ctx, "order", "R-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Timeline) != 301 || in.State != "accepted" {
		t.Errorf("R-1: %s with %d events, want accepted with 301", in.State, len(in.Timeline))
	}
	if got := len(rec.types()); got != 300 {
		t.Errorf("published %d violations, want 300", got)
	}
}

// TestStoreTraceFindsInstancesInTheSnapshot traces, from the files
// alone, instances the snapshot knows (in its buckets) and the log after
// it, and one it does not.
func TestStoreTraceFindsInstancesInTheSnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: base}
	tr := openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now, SnapshotEvery: -1})
	var ds []core.Delivery
	for i := range 1000 {
		ds = append(ds, accepted(i, base))
	}
	write(t, tr, ds...)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, tr, event("b-7", "com.acme.order.billed", orderID(7), "billing", base.Add(time.Minute)), accepted(1000, base))
	st, err := lifecycle.OpenStoreReadOnly(ctx, filepath.Join(dir, lifecycle.StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tests := []struct {
		name  string
		id    string
		state string
		steps int
	}{
		{name: "in the snapshot", id: orderID(999), state: "accepted", steps: 1},
		{name: "in the snapshot, another bucket", id: orderID(3), state: "accepted", steps: 1},
		{name: "in the snapshot and held after it", id: orderID(7), state: "accepted", steps: 2},
		{name: "only after the snapshot", id: orderID(1000), state: "", steps: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := st.Trace(ctx, "order", tt.id)
			if err != nil {
				t.Fatal(err)
			}
			if in.State != tt.state || len(in.Timeline) != tt.steps {
				t.Errorf("%s: %s with %d events, want %q with %d", tt.id, in.State, len(in.Timeline), tt.state, tt.steps)
			}
		})
	}
	if _, err := st.Trace(ctx, "order", "A-nope"); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("an order never seen: %v, want ErrNotFound", err)
	}
}

// TestTrackerNeverReusesASequence prunes the instance whose events are
// the log's last, with a snapshot still naming them, and restarts: the
// next event takes a new sequence, so that pruning the instance again
// (the snapshot brought it back) leaves the new event alone.
func TestTrackerNeverReusesASequence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: base}
	cfg := lifecycle.Config{Dir: dir, Now: clk.now, SnapshotEvery: -1}
	tr := openTracker(t, cfg)
	write(t, tr,
		event("e1", "com.acme.order.accepted", "E-1", "erp", base),
		event("d1", "com.acme.order.accepted", "D-1", "erp", base),
		event("d2", "com.acme.order.billed", "D-1", "billing", base),
		event("d3", "com.acme.order.shipped", "D-1", "wms", base),
	)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	clk.add(catalog.DefaultRetention + time.Hour)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Trace(ctx, "order", "D-1"); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Fatalf("D-1 after the retention: %v, want ErrNotFound", err)
	}
	tr.Close(ctx)
	tr = openTracker(t, cfg)
	ids := []string{"F-1", "G-1", "H-1"}
	for _, id := range ids {
		write(t, tr, event("acc-"+id, "com.acme.order.accepted", id, "erp", clk.now()))
	}
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	tr.Close(ctx)
	tr = openTracker(t, cfg)
	for _, id := range ids {
		in, err := tr.Trace(ctx, "order", id)
		if err != nil || len(in.Timeline) != 1 || in.Timeline[0].EventID != "acc-"+id || in.State != "accepted" {
			t.Errorf("%s = %+v, %v; want accepted with its event", id, in, err)
		}
	}
	if _, err := tr.Trace(ctx, "order", "D-1"); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("D-1 after the restart: %v, want ErrNotFound", err)
	}
}

// TestTrackerReplacesAStoreOfTheFirstFormat opens a directory holding a
// store of the first format (a table of instances): its generation is
// not taken, so the sidecar names a new consumer group that reads the
// stream again, and the tracker empties the store and starts afresh.
func TestTrackerReplacesAStoreOfTheFirstFormat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := statedb.Open(filepath.Join(dir, lifecycle.StoreFile), statedb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(ctx, `CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
		INSERT INTO meta VALUES('generation', 'old1');
		CREATE TABLE instances(entity TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY(entity, id)) WITHOUT ROWID;
		INSERT INTO instances VALUES('order', 'A-1', 'billed');
		CREATE TABLE timeline(entity TEXT, id TEXT);
		CREATE TABLE held(seq INTEGER PRIMARY KEY)`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	gen, err := lifecycle.Generation(dir)
	if err != nil || gen == "old1" {
		t.Fatalf("Generation = %q, %v; want a new one", gen, err)
	}
	clk := &clock{t: base}
	tr := openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now, Generation: gen})
	if _, err := tr.Trace(ctx, "order", "A-1"); !errors.Is(err, lifecycle.ErrNotFound) {
		t.Errorf("A-1 of the first format: %v, want ErrNotFound", err)
	}
	write(t, tr, accepted(1, base))
	tr.Close(ctx)
	if again, err := lifecycle.Generation(dir); err != nil || again != gen {
		t.Errorf("Generation after the tracker opened = %q, %v; want %q", again, err, gen)
	}
}
