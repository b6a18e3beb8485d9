package embedded_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.uber.org/goleak"

	"github.com/tributary/tributary/connectors/embedded"
	"github.com/tributary/tributary/core"
)

func publish(t *testing.T, s *embedded.Stream, topic string, ids ...string) {
	t.Helper()
	var msgs []*message.Message
	for _, id := range ids {
		m := message.NewMessage(id, []byte("payload "+id))
		m.Metadata.Set(core.MetadataKey, "key-"+id)
		msgs = append(msgs, m)
	}
	if err := s.Publisher().Publish(topic, msgs...); err != nil {
		t.Fatalf("publish %v: %v", ids, err)
	}
}

// receive reads n messages from a new subscription of topic, acking each,
// and returns their ids.
func receive(t *testing.T, s *embedded.Stream, opts core.SubscribeOptions, topic string, n int) []string {
	t.Helper()
	sub, err := s.Subscriber(opts)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	var ids []string
	for len(ids) < n {
		m, ok := <-msgs
		if !ok {
			t.Fatalf("subscription ended after %v, want %d messages", ids, n)
		}
		ids = append(ids, m.UUID)
		m.Ack()
	}
	return ids
}

func TestReplay(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	publish(t, s, "orders", "a1", "a2", "a3")
	publish(t, s, "other", "x1")
	since := time.Now()
	publish(t, s, "orders", "b1", "b2")

	tests := []struct {
		name string
		opts core.SubscribeOptions
		want []string
	}{
		{name: "from beginning", opts: core.SubscribeOptions{From: core.FromBeginning}, want: []string{"a1", "a2", "a3", "b1", "b2"}},
		{name: "from time", opts: core.SubscribeOptions{From: core.FromTime, Since: since}, want: []string{"b1", "b2"}},
		{name: "from time before everything", opts: core.SubscribeOptions{From: core.FromTime, Since: since.Add(-time.Hour)}, want: []string{"a1", "a2", "a3", "b1", "b2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := receive(t, s, tt.opts, "orders", len(tt.want))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("from end", func(t *testing.T) {
		sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromEnd})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		msgs, err := sub.Subscribe(context.Background(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		publish(t, s, "orders", "c1")
		m := <-msgs
		m.Ack()
		if m.UUID != "c1" {
			t.Errorf("first message from end = %s, want c1", m.UUID)
		}
	})
}

func TestMetadataRoundTrip(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	m := message.NewMessage("id-1", []byte{0, 1, 2, 255})
	md := map[string]string{
		"plain":          "value",
		"quotes":         `a "quoted" \ value`,
		"control":        "line\nbreak\ttab\x01",
		"unicode":        "Ünïcødé ✓",
		"":               "empty key",
		core.MetadataKey: "order-42",
		"ce_type":        "com.example.order.accepted",
		"empty":          "",
	}
	for k, v := range md {
		m.Metadata.Set(k, v)
	}
	if err := s.Publisher().Publish("t", m); err != nil {
		t.Fatal(err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	got := <-msgs
	got.Ack()
	if !bytes.Equal(got.Payload, m.Payload) {
		t.Errorf("payload = %v, want %v", got.Payload, m.Payload)
	}
	if pos := got.Metadata[core.MetadataPosition]; !strings.HasPrefix(pos, "t/0/") {
		t.Errorf("position = %q, want t/0/<offset>", pos)
	}
	delete(got.Metadata, core.MetadataPosition)
	if !reflect.DeepEqual(map[string]string(got.Metadata), md) {
		t.Errorf("metadata = %q, want %q", got.Metadata, md)
	}
}

func TestGroupResumesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	group := core.SubscribeOptions{Group: "billing", From: core.FromBeginning}

	s := openStream(t, dir, nil)
	publish(t, s, "orders", "m1", "m2", "m3", "m4", "m5")
	if got := receive(t, s, group, "orders", 3); !reflect.DeepEqual(got, []string{"m1", "m2", "m3"}) {
		t.Fatalf("first read = %v", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	s = openStream(t, dir, nil)
	publish(t, s, "orders", "m6")
	got := receive(t, s, group, "orders", 3)
	if want := []string{"m4", "m5", "m6"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen got %v, want %v", got, want)
	}
	// A group of its own starts where its options say.
	other := receive(t, s, core.SubscribeOptions{Group: "audit", From: core.FromBeginning}, "orders", 1)
	if other[0] != "m1" {
		t.Errorf("new group starts at %s, want m1", other[0])
	}
}

func TestGroupSharesWork(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	opts := core.SubscribeOptions{Group: "g", From: core.FromBeginning}
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	publish(t, s, "orders", ids...)

	subA, err := s.Subscriber(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer subA.Close()
	subB, err := s.Subscriber(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer subB.Close()
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	msgsA, err := subA.Subscribe(ctxA, "orders")
	if err != nil {
		t.Fatal(err)
	}
	msgsB, err := subB.Subscribe(ctxB, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// One of them holds the group's lease: it reads half, then leaves, and
	// the other takes over where it stopped.
	var got []string
	var first, second <-chan *message.Message
	var leave context.CancelFunc
	select {
	case m := <-msgsA:
		got, first, second, leave = append(got, m.UUID), msgsA, msgsB, cancelA
		m.Ack()
	case m := <-msgsB:
		got, first, second, leave = append(got, m.UUID), msgsB, msgsA, cancelB
		m.Ack()
	}
	for range 9 {
		m := <-first
		got = append(got, m.UUID)
		m.Ack()
	}
	leave()
	for range 10 {
		m := <-second
		got = append(got, m.UUID)
		m.Ack()
	}
	if !reflect.DeepEqual(got, ids) {
		t.Errorf("group read %v, want %v", got, ids)
	}
}

func TestNackResends(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	publish(t, s, "orders", "m1", "m2")
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 4 {
		m := <-msgs
		got = append(got, m.UUID)
		if i < 2 {
			m.Nack()
		} else {
			m.Ack()
		}
	}
	if want := []string{"m1", "m1", "m1", "m2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openStream(t, dir, nil)
	cps := s.Checkpoints()
	if _, ok, err := cps.Load(ctx, "legacy_orders"); err != nil || ok {
		t.Fatalf("load before save: ok=%v err=%v", ok, err)
	}
	want := core.Checkpoint{
		Format:    core.CheckpointFormat,
		Connector: "legacy_orders",
		Position:  core.Position{Version: 1, Data: []byte("cursor-7")},
		Time:      time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
	}
	if err := cps.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	want.Position.Data = []byte("cursor-8")
	if err := cps.Save(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s = openStream(t, dir, nil)
	got, ok, err := s.Checkpoints().Load(ctx, "legacy_orders")
	if err != nil || !ok {
		t.Fatalf("load after reopen: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	if err := s.Checkpoints().Save(ctx, core.Checkpoint{}); err == nil {
		t.Error("save without connector: want an error")
	}
}

// TestCheckpointGoldenV1 reads the frozen encoding of a format 1
// checkpoint, as stored in the checkpoints table, and checks that format 1
// still encodes the same way.
func TestCheckpointGoldenV1(t *testing.T) {
	golden, err := os.ReadFile("testdata/checkpoint_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	golden = bytes.TrimSpace(golden)
	want := core.Checkpoint{
		Format:    1,
		Connector: "legacy_orders",
		Position:  core.Position{Version: 2, Data: []byte("0/16B6F48")},
		Time:      time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC),
	}
	enc, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, golden) {
		t.Errorf("format 1 encodes as\n%s\nwant the frozen\n%s", enc, golden)
	}

	dir := t.TempDir()
	s := openStream(t, dir, nil)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO checkpoints (connector, checkpoint) VALUES (?, ?)`, "legacy_orders", string(golden)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStream(t, dir, nil)
	got, ok, err := s.Checkpoints().Load(context.Background(), "legacy_orders")
	if err != nil || !ok {
		t.Fatalf("load golden: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want) || !got.Time.Equal(want.Time) {
		t.Errorf("golden decoded as %+v, want %+v", got, want)
	}
}

func TestRetentionPrunes(t *testing.T) {
	dir := t.TempDir()
	s := openStream(t, dir, map[string]any{"retention": "100ms"})
	publish(t, s, "orders", "old1", "old2", "old3")
	db, err := sql.Open("sqlite", dbFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func() int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM batches`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d batches still stored well after the retention", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Offsets keep growing after a prune: a new subscriber from the end
	// sees only new messages, and readers from the beginning only what is
	// retained.
	publish(t, s, "orders", "new1")
	got := receive(t, s, core.SubscribeOptions{From: core.FromBeginning}, "orders", 1)
	if got[0] != "new1" {
		t.Errorf("after prune read %v, want new1", got)
	}
	// new1 may be pruned already too, but the end of the log stays.
	var end int64
	if err := db.QueryRow(`SELECT MAX(last_offset, COALESCE((SELECT MAX(last_offset) FROM batches), 0)) FROM log_end`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	if end != 4 {
		t.Errorf("after pruning offsets 1 to 3 and publishing one more, the log ends at %d, want 4", end)
	}
}

func TestCloseIdempotentAndAfterFailedOpen(t *testing.T) {
	ctx := context.Background()
	s := embedded.New()
	if err := s.Close(ctx); err != nil {
		t.Errorf("close before open: %v", err)
	}

	s = embedded.New()
	if err := s.Configure(core.NewConfig("stream", map[string]any{"path": "/proc/forbidden/stream.db"})); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, core.Env{}); err == nil {
		t.Fatal("open under /proc: want an error")
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("close after failed open: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestNoGoroutinesAfterClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s := embedded.New()
	ctx := context.Background()
	if err := s.Configure(core.NewConfig("stream", nil)); err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx, core.Env{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	publish(t, s, "orders", "m1")
	sub, err := s.Subscriber(core.SubscribeOptions{Group: "g", From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := sub.Subscribe(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	(<-msgs).Ack()
	if _, err := sub.Subscribe(ctx, "idle"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-msgs; ok {
		t.Error("subscription channel still open after Close")
	}
	if err := s.Publisher().Publish("orders", message.NewMessage("late", nil)); !errors.Is(err, embedded.ErrNotOpen) && !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("publish after close = %v, want ErrClosed or ErrNotOpen", err)
	}
}

// TestCloseBoundedByContext closes the stream with a cancelled context
// while publishes are queued: Close returns, and every publish learns its
// outcome exactly once.
func TestCloseBoundedByContext(t *testing.T) {
	s := openStream(t, t.TempDir(), nil)
	pub := s.Publisher().(core.AsyncPublisher)
	const n = 5000
	var wg sync.WaitGroup
	var calls, failed atomic.Int64
	for i := range n {
		wg.Add(1)
		m := message.NewMessage(fmt.Sprintf("m%d", i), []byte("x"))
		err := pub.PublishAsync(context.Background(), "orders", []*message.Message{m}, func(err error) {
			calls.Add(1)
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Close(ctx)
	wg.Wait()
	t.Logf("%d of %d publishes flushed before the cancelled Close gave up", n-failed.Load(), n)
	if calls.Load() != n {
		t.Errorf("done called %d times for %d publishes", calls.Load(), n)
	}
	if failed.Load() > 0 && !errors.Is(err, context.Canceled) {
		t.Errorf("%d publishes failed but Close returned %v", failed.Load(), err)
	}
	if failed.Load() == 0 && err != nil {
		t.Errorf("every publish flushed but Close returned %v", err)
	}
	err = pub.PublishAsync(context.Background(), "orders", []*message.Message{message.NewMessage("late", nil)}, func(error) {
		t.Error("done called for a publish refused after Close")
	})
	if !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("publish after close = %v, want ErrClosed", err)
	}
}

// TestTwoStreamsOnOneFile opens the same file twice, as a sidecar and a
// second process (such as `tributary events tail`) do: messages published
// through one are read through the other, and one consumer group spans
// both, one reader at a time.
func TestTwoStreamsOnOneFile(t *testing.T) {
	dir := t.TempDir()
	s1 := openStream(t, dir, nil)
	s2 := openStream(t, dir, nil)

	tail, err := s2.Subscriber(core.SubscribeOptions{From: core.FromEnd})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	tailed, err := tail.Subscribe(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 10 {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	publish(t, s1, "orders", ids...)
	if m := <-tailed; m.UUID != "m00" {
		t.Errorf("other stream read %s first, want m00", m.UUID)
	} else {
		m.Ack()
	}

	opts := core.SubscribeOptions{Group: "billing", From: core.FromBeginning}
	subA, err := s1.Subscriber(opts)
	if err != nil {
		t.Fatal(err)
	}
	msgsA, err := subA.Subscribe(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 5 {
		m := <-msgsA
		got = append(got, m.UUID)
		m.Ack()
	}
	subB, err := s2.Subscriber(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer subB.Close()
	msgsB, err := subB.Subscribe(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	// B waits for the lease while A holds it and reads on, then resumes
	// after A's last ack.
	for range 3 {
		m := <-msgsA
		got = append(got, m.UUID)
		m.Ack()
	}
	if err := subA.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		m := <-msgsB
		got = append(got, m.UUID)
		m.Ack()
	}
	if !reflect.DeepEqual(got, ids) {
		t.Errorf("group across two streams read %v, want %v", got, ids)
	}
}

func TestPing(t *testing.T) {
	ctx := context.Background()
	s := embedded.New()
	if err := s.Ping(ctx); !errors.Is(err, embedded.ErrNotOpen) {
		t.Errorf("ping before open = %v, want ErrNotOpen", err)
	}
	if err := s.Open(ctx, core.Env{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); !errors.Is(err, embedded.ErrClosed) {
		t.Errorf("ping after close = %v, want ErrClosed", err)
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a database\n"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		values map[string]any
		env    core.Env
	}{
		{name: "path is a directory", values: map[string]any{"path": dir}},
		{name: "no path and no state directory", values: nil},
		{name: "file is not a database", values: map[string]any{"path": junk}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := embedded.New()
			if err := s.Configure(core.NewConfig("stream", tt.values)); err != nil {
				t.Fatal(err)
			}
			err := s.Open(context.Background(), tt.env)
			if err == nil {
				t.Fatal("want an error")
			}
			t.Logf("error: %v", err)
			if p, _ := tt.values["path"].(string); p != "" && !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %q", err, p)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("close after failed open: %v", err)
			}
		})
	}
}

// TestBatchesSplitAndResume publishes more than one batch row holds, and a
// message larger than a batch row, in one call: every message is read in
// order, and a group resumes in the middle of a batch.
func TestBatchesSplitAndResume(t *testing.T) {
	dir := t.TempDir()
	s := openStream(t, dir, nil)
	var msgs []*message.Message
	var ids []string
	for i := range 2500 {
		id := fmt.Sprintf("m%04d", i)
		ids = append(ids, id)
		payload := bytes.Repeat([]byte{byte(i)}, 1024)
		if i == 1700 {
			payload = bytes.Repeat([]byte{7}, 3<<20)
		}
		m := message.NewMessage(id, payload)
		m.Metadata.Set("n", fmt.Sprint(i))
		msgs = append(msgs, m)
	}
	if err := s.Publisher().Publish("orders", msgs...); err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := openDB(t, dir).QueryRow(`SELECT COUNT(*) FROM batches`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows < 4 {
		t.Errorf("%d batch rows for 5.5 MiB of messages, want at least 4", rows)
	}

	group := core.SubscribeOptions{Group: "g", From: core.FromBeginning}
	check := func(got []*message.Message, from int) {
		t.Helper()
		for i, m := range got {
			want := msgs[from+i]
			if m.UUID != want.UUID || !bytes.Equal(m.Payload, want.Payload) || m.Metadata.Get("n") != want.Metadata.Get("n") {
				t.Fatalf("message %d is %s (%d bytes), want %s (%d bytes)", from+i, m.UUID, len(m.Payload), want.UUID, len(want.Payload))
			}
		}
	}
	check(receiveMessages(t, s, group, "orders", 1234), 0)
	check(receiveMessages(t, s, group, "orders", 2500-1234), 1234)
	if got := receive(t, s, core.SubscribeOptions{From: core.FromBeginning}, "orders", 2500); !reflect.DeepEqual(got, ids) {
		t.Errorf("from the beginning read %d messages, not the %d published in order", len(got), len(ids))
	}
}

// receiveMessages reads n messages from a new subscription of topic,
// acking each.
func receiveMessages(t *testing.T, s *embedded.Stream, opts core.SubscribeOptions, topic string, n int) []*message.Message {
	t.Helper()
	sub, err := s.Subscriber(opts)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	var out []*message.Message
	for len(out) < n {
		m, ok := <-ch
		if !ok {
			t.Fatalf("subscription ended after %d messages, want %d", len(out), n)
		}
		m.Ack()
		out = append(out, m)
	}
	return out
}
