package embedded_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tributary/tributary/core"
)

// crashDirEnv, when set, makes TestCrashDurability act as the child process
// that publishes into that directory until it is killed.
const crashDirEnv = "TRIBUTARY_EMBEDDED_CRASH_DIR"

// TestCrashDurability proves that an acknowledged publish survives kill -9:
// a child process publishes and prints the id of every acked message, the
// test kills it with SIGKILL, reopens the database and finds every printed
// id.
func TestCrashDurability(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 5000
	acked := map[string]bool{}
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "acked ")
		if !ok {
			continue
		}
		acked[id] = true
		if len(acked) >= killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d acks, before it was killed", len(acked))
	}
	t.Logf("child killed after %d acked messages", len(acked))

	s := openStream(t, dir, nil)
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	missing := len(acked)
	for missing > 0 {
		m, ok := <-msgs
		if !ok {
			break
		}
		if acked[m.UUID] {
			acked[m.UUID] = false
			missing--
		}
		m.Ack()
	}
	if missing > 0 {
		var some []string
		for id, miss := range acked {
			if miss && len(some) < 5 {
				some = append(some, id)
			}
		}
		t.Fatalf("%d acked messages lost after kill -9, such as %v", missing, some)
	}
}

// crashChild publishes synchronously and asynchronously until killed (or
// for a minute at most), printing "acked <id>" for every acked message.
func crashChild(t *testing.T, dir string) {
	s := openStream(t, dir, nil)
	pub := s.Publisher()
	async := pub.(core.AsyncPublisher)
	var outMu sync.Mutex
	report := func(ids ...string) {
		var b strings.Builder
		for _, id := range ids {
			b.WriteString("acked " + id + "\n")
		}
		outMu.Lock()
		defer outMu.Unlock()
		// One write per message keeps every line whole in the pipe.
		for line := range strings.Lines(b.String()) {
			_, _ = os.Stdout.WriteString(line)
		}
	}
	payload := make([]byte, 512)
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				msg := message.NewMessage(id, payload)
				if w%2 == 0 {
					if err := pub.Publish("crash", msg); err != nil {
						t.Errorf("publish %s: %v", id, err)
						return
					}
					report(id)
					continue
				}
				errc := make(chan error, 1)
				if err := async.PublishAsync(context.Background(), "crash", []*message.Message{msg}, func(err error) {
					if err == nil {
						report(id)
					}
					errc <- err
				}); err != nil {
					t.Errorf("publish %s: %v", id, err)
					return
				}
				if i%64 == 63 {
					if err := <-errc; err != nil {
						t.Errorf("publish %s: %v", id, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
