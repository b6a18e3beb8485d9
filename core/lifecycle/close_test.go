package lifecycle_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tributary/tributary/core/lifecycle"
)

// TestCloseWritesASnapshot: a clean stop leaves a snapshot of everything
// judged, so that `tributary trace` from the files and the next start-up
// read no log after it, and they tell the same as the tracker did.
func TestCloseWritesASnapshot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &clock{t: base}
	const n = 10
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "O-" + strconv.Itoa(i)
	}
	tr := openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now})
	write(t, tr, history(n, 0, base)...)
	write(t, tr, history(n, 1, base)...)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	before := state(t, tr, ids)
	if _, err := os.Stat(filepath.Join(dir, lifecycle.SnapshotFile)); err == nil {
		t.Fatal("a snapshot was written before Close; the test needs none")
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, lifecycle.SnapshotFile)); err != nil {
		t.Fatalf("no snapshot after Close: %v", err)
	}
	st, err := lifecycle.OpenStoreReadOnly(ctx, filepath.Join(dir, lifecycle.StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range ids {
		in, err := st.Trace(ctx, "order", id)
		if err != nil {
			t.Fatalf("trace %s from the files: %v", id, err)
		}
		if !reflect.DeepEqual(*in, before[id]) {
			t.Errorf("trace %s from the files:\n%+v\nwant\n%+v", id, *in, before[id])
		}
	}
	tr = openTracker(t, lifecycle.Config{Dir: dir, Now: clk.now})
	if after := state(t, tr, ids); !reflect.DeepEqual(after, before) {
		t.Errorf("after a clean stop:\n%+v\nwant\n%+v", after, before)
	}
}

// TestTraceWhileJudging: queries read the store's names while the
// tracker records new ones (run with -race).
func TestTraceWhileJudging(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: base}
	tr := openTracker(t, lifecycle.Config{Dir: t.TempDir(), Now: clk.now})
	write(t, tr, history(1, 0, base)...)
	clk.add(3 * time.Second)
	if err := tr.Step(ctx); err != nil {
		t.Fatal(err)
	}
	done, started := make(chan struct{}), make(chan struct{})
	traced := make(chan int)
	go func() {
		n := 0
		for {
			if n == 1 {
				close(started)
			}
			select {
			case <-done:
				traced <- n
				return
			default:
			}
			if _, err := tr.Trace(ctx, "order", "O-0"); err != nil {
				t.Error(err)
			}
			n++
		}
	}()
	<-started
	for phase := 1; phase < 3; phase++ {
		write(t, tr, history(4, phase, base)...)
		clk.add(3 * time.Second)
		if err := tr.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	<-traced
	in, err := tr.Trace(ctx, "order", "O-0")
	if err != nil {
		t.Fatal(err)
	}
	if in.State != "shipped" || len(in.Timeline) != 3 {
		t.Fatalf("O-0 is %q with %d events, want shipped with 3", in.State, len(in.Timeline))
	}
}
