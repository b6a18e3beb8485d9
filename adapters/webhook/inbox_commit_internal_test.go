package webhook

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdSync replaces datasync for one test with sync, restored at cleanup.
// Tests that use it do not run in parallel.
func holdSync(t *testing.T, sync func(*os.File) error) {
	t.Helper()
	prev := datasync
	datasync = sync
	t.Cleanup(func() { datasync = prev })
}

// startInbox opens and starts an inbox in a fresh directory, with the
// hooks of each commit: onCommit and, when given, onAnswered.
func startInbox(t *testing.T, onCommit func([]*record), onAnswered ...func()) *inbox {
	t.Helper()
	ib, _, err := openInbox(context.Background(), t.TempDir(), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ib.onCommit = onCommit
	if len(onAnswered) > 0 {
		ib.onAnswered = onAnswered[0]
	}
	ib.start()
	t.Cleanup(func() { _ = ib.close(context.Background()) })
	return ib
}

func testRecord(id string) *record {
	return &record{id: id, received: time.Now(), body: []byte(`{"n":1}`),
		meta: recordMeta{Method: "POST", Path: "/hooks/x", ContentType: "application/json"}}
}

// queueBehindHeldSync starts an inbox, submits a first delivery and holds
// its commit's fdatasync until release is closed, and returns once more
// deliveries wait in the writer's queue behind it. errs receives the
// outcome of every submit.
func queueBehindHeldSync(t *testing.T, more int) (ib *inbox, errs chan error, release chan struct{}) {
	t.Helper()
	entered := make(chan struct{}, 16)
	release = make(chan struct{})
	holdSync(t, func(*os.File) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	ib = startInbox(t, nil)
	errs = make(chan error, 1+more)
	submit := func(id string) {
		go func() {
			_, err := ib.submit(context.Background(), testRecord(id))
			errs <- err
		}()
	}
	submit("first")
	<-entered
	for i := range more {
		submit("more" + strconv.Itoa(i))
	}
	for deadline := time.Now().Add(10 * time.Second); len(ib.reqs) < more; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries queued", len(ib.reqs), more)
		}
		time.Sleep(time.Millisecond)
	}
	return ib, errs, release
}

// TestInboxGroupsWhileSyncing holds the fdatasync of a first commit and
// submits more deliveries meanwhile: they are stored by one next commit
// (after the group window), not one each.
func TestInboxGroupsWhileSyncing(t *testing.T) {
	const more = 5
	ib, errs, release := queueBehindHeldSync(t, more)
	close(release)
	for range 1 + more {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := ib.commits.Load(), int64(2); got != want {
		t.Errorf("commits = %d, want %d: the first, then the %d that arrived during its fdatasync", got, want, more)
	}
	if got := ib.stored.Load(); got != 1+more {
		t.Errorf("stored = %d, want %d", got, 1+more)
	}
}

// TestInboxQueuesThenAnswersThenWakes checks the order of a commit's
// steps: its records are handed to the reader's queue before their
// submitter is answered, so a delivery answered 2xx is always one Read or
// Drain can take, and the reader is woken only after the answers, which do
// not wait for it (nor for the stream's commit behind it).
func TestInboxQueuesThenAnswersThenWakes(t *testing.T) {
	handed := make(chan []string, 1)
	woken := make(chan struct{})
	answered := make(chan struct{})
	ib := startInbox(t, func(recs []*record) {
		ids := make([]string, len(recs))
		for i, r := range recs {
			ids[i] = r.id
		}
		handed <- ids
	}, func() {
		select {
		case <-answered:
		case <-time.After(10 * time.Second):
		}
		close(woken)
	})
	done := make(chan error, 1)
	go func() {
		_, err := ib.submit(context.Background(), testRecord("a"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		select {
		case ids := <-handed:
			if len(ids) != 1 || ids[0] != "a" {
				t.Errorf("handed %q, want [a]", ids)
			}
		default:
			t.Error("the delivery was answered before its records were queued for the reader")
		}
		close(answered)
	case <-time.After(5 * time.Second):
		close(answered)
		t.Fatal("the delivery was not answered before the reader was woken")
	}
	<-woken
}

// TestInboxCommitsBeforeOtherWork holds the fdatasync of a first commit past
// the group window while more deliveries queue, then, on one processor,
// keeps another goroutine runnable: the writer commits the queued
// deliveries right after the first commit, before that goroutine runs
// again. A writer that yields first (runtime.Gosched, to let more
// deliveries arrive) goes to the scheduler's global queue, behind every
// goroutine the network woke, and all the deliveries waiting for its
// commit wait with it.
func TestInboxCommitsBeforeOtherWork(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const more = 5
	ib, errs, release := queueBehindHeldSync(t, more)
	time.Sleep(2 * groupWindow) // the next commit is due at once
	// The other goroutine reports the commits once the first is done;
	// it yields meanwhile, so it runs whenever the writer does not.
	seen := make(chan int64, 1)
	go func() {
		for {
			if n := ib.commits.Load(); n > 0 {
				seen <- n
				return
			}
			runtime.Gosched()
		}
	}()
	close(release)
	for range 1 + more {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := <-seen; got != 2 {
		t.Errorf("another runnable goroutine ran after %d commits, want 2: the writer yielded before committing the queued deliveries", got)
	}
}

// doneCounter counts the calls of its Done method.
type doneCounter struct {
	context.Context
	calls atomic.Int64
}

func (c *doneCounter) Done() <-chan struct{} {
	c.calls.Add(1)
	return c.Context.Done()
}

// TestInboxSubmitLeavesContextDone checks that a delivery queued while the
// writer keeps up never asks for its request's Done channel, which a
// request context allocates on the first call (once per delivery).
func TestInboxSubmitLeavesContextDone(t *testing.T) {
	ib := startInbox(t, nil)
	ctx := &doneCounter{Context: context.Background()}
	if _, err := ib.submit(ctx, testRecord("a")); err != nil {
		t.Fatal(err)
	}
	if n := ctx.calls.Load(); n != 0 {
		t.Errorf("submit called ctx.Done %d times, want 0", n)
	}
}

// TestInboxCommitsWhileSegmentsAreDeleted holds the deletion of an
// acknowledged segment: deliveries are still committed meanwhile, since
// deleting a segment (2-3 ms for 8 MiB) is no part of any commit.
func TestInboxCommitsWhileSegmentsAreDeleted(t *testing.T) {
	removing := make(chan string, 16)
	release := make(chan struct{})
	prev := removeSegment
	removeSegment = func(path string) error {
		removing <- path
		<-release
		return os.Remove(path)
	}
	t.Cleanup(func() { removeSegment = prev })
	ctx := context.Background()
	ib, _, err := openInbox(ctx, t.TempDir(), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ib.segmentBytes = 1 // a segment a commit
	ib.start()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		free()
		_ = ib.close(ctx)
	})
	a := testRecord("a")
	if _, err := ib.submit(ctx, a); err != nil {
		t.Fatal(err)
	}
	ib.ack(a.seq)
	// The ack is written with "b"; the commit after it compacts a's
	// segment, whose deletion is held.
	if _, err := ib.submit(ctx, testRecord("b")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-removing:
	case <-time.After(10 * time.Second):
		t.Fatal("the acknowledged segment was not deleted")
	}
	done := make(chan error, 1)
	go func() {
		_, err := ib.submit(ctx, testRecord("c"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		free()
		t.Fatal("no commit while an acknowledged segment was being deleted")
	}
	free()
}

// TestInboxPause checks the writer's pause between group commits: it lasts
// at least what was asked, whether taken exactly (up to exactPause) or
// with a timer, and reports a stopped inbox either way.
func TestInboxPause(t *testing.T) {
	ib, _, err := openInbox(context.Background(), t.TempDir(), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ib.close(context.Background()) })
	for _, d := range []time.Duration{300 * time.Microsecond, groupWindow, exactPause, exactPause + time.Millisecond} {
		start := time.Now()
		if !ib.pause(d) {
			t.Fatalf("pause(%v) = false before the inbox stopped", d)
		}
		if took := time.Since(start); took < d {
			t.Errorf("pause(%v) returned after %v", d, took)
		}
	}
	if err := ib.stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{300 * time.Microsecond, exactPause + time.Millisecond} {
		if ib.pause(d) {
			t.Errorf("pause(%v) = true after the inbox stopped", d)
		}
	}
}
