package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/adapters/webhook"
	"github.com/tributary/tributary/core"
)

// postAsync posts a delivery with id on its own goroutine; its answer
// arrives on the returned channel.
func (h *harness) postAsync(body, id string) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/hooks/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Delivery", id)
		resp, err := h.srv.Client().Do(req)
		if err != nil {
			out <- answer{status: -1, raw: err.Error()}
			return
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		out <- answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	}()
	return out
}

// noAnswer checks that a is still waiting.
func noAnswer(t *testing.T, a <-chan answer, what string) {
	t.Helper()
	select {
	case got := <-a:
		t.Fatalf("%s answered %d %s before the stream acknowledged it", what, got.status, got.raw)
	case <-time.After(50 * time.Millisecond):
	}
}

// await returns a's answer.
func await(t *testing.T, a <-chan answer) answer {
	t.Helper()
	select {
	case got := <-a:
		return got
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return answer{}
	}
}

// segmentDeliveries reports whether an inbox segment in dir holds marker:
// with AckStream no delivery is written to them.
func segmentDeliveries(t *testing.T, dir string, marker string) bool {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "webhook-inbox", "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range segs {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // compacted, deleted in the background
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), marker) {
			return true
		}
	}
	return false
}

// TestAckStreamSingleWrite checks ack: stream: a delivery is handed to
// Read without being written to the inbox log, answered only once Ack
// covers it, and a retry after that is a duplicate, also after a restart.
func TestAckStreamSingleWrite(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, AckMode: webhook.AckStream, AckTimeout: time.Minute})

	a := h.postAsync(`{"n":"body-of-s-1"}`, "s-1")
	chs := h.readN(1)
	if string(chs[0].Position.Data) != "s-1" || string(chs[0].Raw) != `{"n":"body-of-s-1"}` {
		t.Fatalf("read %s %s, want s-1 and its body", chs[0].Position, chs[0].Raw)
	}
	noAnswer(t, a, "the delivery")
	if err := h.src.Ack(context.Background(), chs[0].Position); err != nil {
		t.Fatal(err)
	}
	if got := await(t, a); got.status != 200 || !strings.Contains(got.raw, `"delivered"`) {
		t.Fatalf("answer after the ack = %d %s, want 200 delivered", got.status, got.raw)
	}
	if st := h.src.Status(); st["inbox_stored"] != int64(0) {
		t.Fatalf("status %v: the inbox stored deliveries; with ack: stream the stream is the inbox", st)
	}
	if segmentDeliveries(t, h.dir, "body-of-s-1") {
		t.Fatal("the delivery's body is in the inbox log; with ack: stream only the stream holds it")
	}

	if got := h.post(`{"n":"body-of-s-1"}`, map[string]string{"X-Delivery": "s-1"}); got.status != 200 || got.body["status"] != "duplicate" {
		t.Fatalf("retry after the ack = %d %s, want 200 duplicate", got.status, got.raw)
	}
	h.readNone()

	// The id outlives the source: a retry after a restart is a duplicate,
	// and nothing is read again.
	h.restart(core.Position{Version: webhook.PositionVersion, Data: []byte("s-1")})
	h.readNone()
	if got := h.post(`{"n":"body-of-s-1"}`, map[string]string{"X-Delivery": "s-1"}); got.status != 200 || got.body["status"] != "duplicate" {
		t.Fatalf("retry after a restart = %d %s, want 200 duplicate", got.status, got.raw)
	}
	h.readNone()
}

// TestAckStreamTimeoutDrops checks that a delivery not acknowledged within
// ack_timeout gets 503 with Retry-After: when Read had not taken it, it is
// dropped (nothing is read, and the sender's retry is a fresh delivery);
// when Read had, a retry waits for its acknowledgement and is a duplicate.
func TestAckStreamTimeoutDrops(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, AckMode: webhook.AckStream, AckTimeout: time.Second, RetryAfter: time.Second})

	a := h.post(`{"n":1}`, map[string]string{"X-Delivery": "d-1"})
	if a.status != 503 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("unread delivery = %d %s, want 503 with Retry-After", a.status, a.raw)
	}
	h.readNone()
	if st := h.src.Status(); st["inbox_pending"] != int64(0) {
		t.Fatalf("status %v after the drop, want nothing pending", st)
	}
	// The retry is a fresh delivery.
	retry := h.postAsync(`{"n":1}`, "d-1")
	chs := h.readN(1)
	if got := await(t, retry); got.status != 503 {
		t.Fatalf("retry read but not acknowledged = %d %s, want 503", got.status, got.raw)
	}
	// Read took it: it stays in flight, and the next retry waits for it.
	again := h.postAsync(`{"n":1}`, "d-1")
	noAnswer(t, again, "a retry of a delivery in flight")
	if err := h.src.Ack(context.Background(), chs[0].Position); err != nil {
		t.Fatal(err)
	}
	if got := await(t, again); got.status != 200 || !strings.Contains(got.raw, `"duplicate"`) {
		t.Fatalf("retry waiting on the acknowledged delivery = %d %s, want 200 duplicate", got.status, got.raw)
	}
	h.readNone()
}

// TestAckStreamIdenticalInFlight checks that identical deliveries sent at
// once are emitted once: the first is in flight, the others wait for it
// and are answered with it.
func TestAckStreamIdenticalInFlight(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, AckMode: webhook.AckStream, AckTimeout: time.Minute})
	const n = 8
	var answers []<-chan answer
	for range n {
		answers = append(answers, h.postAsync(`{"n":1}`, "same"))
	}
	chs := h.readN(1)
	// Let every copy reach the handler before the ack.
	deadline := time.Now().Add(5 * time.Second)
	for dupCount(t, h) < n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %v of %d copies arrived", dupCount(t, h), n-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.readNone()
	if err := h.src.Ack(context.Background(), chs[0].Position); err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, a := range answers {
		got := await(t, a)
		if got.status != 200 {
			t.Fatalf("copy answered %d %s, want 200", got.status, got.raw)
		}
		switch {
		case strings.Contains(got.raw, `"delivered"`):
			statuses["delivered"]++
		case strings.Contains(got.raw, `"duplicate"`):
			statuses["duplicate"]++
		}
	}
	if statuses["delivered"] != 1 || statuses["duplicate"] != n-1 {
		t.Fatalf("answers %v, want 1 delivered and %d duplicate", statuses, n-1)
	}
	h.readNone()
}

// dupCount returns the duplicates counted so far.
func dupCount(t *testing.T, h *harness) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tributary_webhook_deliveries_duplicate_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// TestAckStreamBackpressure checks that max_pending bounds the deliveries
// in memory with ack: stream, and that an acknowledgement frees room.
func TestAckStreamBackpressure(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, AckMode: webhook.AckStream, AckTimeout: time.Minute, MaxPending: 2})
	first := h.postAsync(`{"n":1}`, "b-1")
	second := h.postAsync(`{"n":2}`, "b-2")
	chs := h.readN(2)
	if got := h.post(`{"n":3}`, map[string]string{"X-Delivery": "b-3"}); got.status != 503 || got.header.Get("Retry-After") == "" {
		t.Fatalf("third delivery beyond max_pending = %d %s, want 503 with Retry-After", got.status, got.raw)
	}
	if err := h.src.Ack(context.Background(), chs[1].Position); err != nil {
		t.Fatal(err)
	}
	for _, a := range []<-chan answer{first, second} {
		if got := await(t, a); got.status != 200 {
			t.Fatalf("answer = %d %s", got.status, got.raw)
		}
	}
	third := h.postAsync(`{"n":3}`, "b-3")
	chs = h.readN(1)
	if string(chs[0].Position.Data) != "b-3" {
		t.Fatalf("read %s, want b-3", chs[0].Position)
	}
	if err := h.src.Ack(context.Background(), chs[0].Position); err != nil {
		t.Fatal(err)
	}
	if got := await(t, third); got.status != 200 {
		t.Fatalf("third delivery once there is room = %d %s", got.status, got.raw)
	}
}

// TestAckStreamReadsInboxLeftovers checks that deliveries stored in the
// inbox before a change to ack: stream are read and acknowledged first.
func TestAckStreamReadsInboxLeftovers(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID})
	for i := range 3 {
		if a := h.post(fmt.Sprintf(`{"n":%d}`, i), map[string]string{"X-Delivery": fmt.Sprint("old-", i)}); a.status != 200 {
			t.Fatalf("inbox delivery = %d %s", a.status, a.raw)
		}
	}
	h.cfg.AckMode, h.cfg.AckTimeout = webhook.AckStream, time.Minute
	h.restart(core.Position{})
	a := h.postAsync(`{"n":9}`, "new")
	chs := h.readN(4)
	var got []string
	for _, c := range chs {
		got = append(got, string(c.Position.Data))
	}
	if strings.Join(got, ",") != "old-0,old-1,old-2,new" {
		t.Fatalf("read %v, want the stored deliveries, then the new one", got)
	}
	if err := h.src.Ack(context.Background(), chs[3].Position); err != nil {
		t.Fatal(err)
	}
	if got := await(t, a); got.status != 200 {
		t.Fatalf("new delivery = %d %s", got.status, got.raw)
	}
	// The stored ones were acknowledged in the inbox: not read again.
	h.restart(core.Position{})
	h.readNone()
}

// TestAckStreamCloseAnswers503 checks that deliveries waiting for the
// stream when the source closes are answered 503 with Retry-After.
func TestAckStreamCloseAnswers503(t *testing.T) {
	h := newHarness(t, webhook.Config{Path: "/hooks/orders", DeliveryID: headerID, AckMode: webhook.AckStream, AckTimeout: time.Minute})
	a := h.postAsync(`{"n":1}`, "c-1")
	h.readN(1)
	if err := h.src.Close(context.Background()); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if got := await(t, a); got.status != 503 || got.header.Get("Retry-After") == "" {
		t.Fatalf("delivery waiting at close = %d %s, want 503 with Retry-After", got.status, got.raw)
	}
}
