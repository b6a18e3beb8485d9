package kafka_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/connectors/kafka"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// proxy forwards the connections it accepts on one loopback address to the
// broker. It stands for brokers at an address where nothing listens until
// up is called.
type proxy struct {
	addr   string
	broker string

	mu    sync.Mutex
	l     net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

// newProxy returns a proxy for broker on a free loopback port where nothing
// listens yet; the test's end stops it.
func newProxy(t *testing.T, broker string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{addr: l.Addr().String(), broker: broker}
	l.Close()
	t.Cleanup(p.stop)
	return p
}

// up starts listening on the proxy's address.
func (p *proxy) up(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.broker)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(b, c); b.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, b); c.Close() })
		}
	})
}

func (p *proxy) stop() {
	p.mu.Lock()
	if p.l != nil {
		p.l.Close()
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// checkStreamWorks publishes an event, reads it back and saves and loads a
// checkpoint, all on handles taken from s now.
func checkStreamWorks(t *testing.T, s core.Stream, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := newTopic(name)
	if err := s.Publisher().Publish(topic, testEvent("ev-"+name, "k").ToMessage()); err != nil {
		t.Fatalf("publish: %v", err)
	}
	sub, err := s.Subscriber(core.SubscribeOptions{From: core.FromBeginning})
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if m := receive(t, ch, 1)[0]; m.UUID != "ev-"+name {
		t.Fatalf("read %q, want ev-%s", m.UUID, name)
	}
	cps := s.Checkpoints()
	connector := "conn-" + topic
	if err := cps.Save(ctx, core.Checkpoint{Connector: connector, Position: core.Position{Version: 1, Data: []byte(name)}}); err != nil {
		t.Fatalf("save checkpoint: %v", err)
	}
	cp, ok, err := cps.Load(ctx, connector)
	if err != nil || !ok || string(cp.Position.Data) != name {
		t.Fatalf("load checkpoint: %+v ok=%v err=%v, want position %s", cp, ok, err, name)
	}
}

// TestOpenAfterFailedOpen opens a stream whose brokers do not answer,
// closes it as the runtime does after a failed Open, makes the brokers
// answer and opens the same value again: it connects, and publishing,
// reading and checkpoints work.
func TestOpenAfterFailedOpen(t *testing.T) {
	brokers := servicetest.Kafka(t)
	p := newProxy(t, brokers[0])
	s := kafka.New()
	if err := s.Configure(core.NewConfig("stream", map[string]any{
		"brokers":          []any{p.addr},
		"dial_timeout":     "1s",
		"checkpoint_topic": newTopic("checkpoints"),
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for attempt := range 2 {
		err := s.Open(ctx, core.Env{Name: "stream"})
		if err == nil {
			t.Fatalf("open %d succeeded with nothing listening at %s", attempt, p.addr)
		}
		if !strings.Contains(err.Error(), p.addr) {
			t.Fatalf("open %d: error does not name the brokers: %v", attempt, err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatalf("close after failed open %d: %v", attempt, err)
		}
	}
	p.up(t)
	if err := s.Open(ctx, core.Env{Name: "stream"}); err != nil {
		t.Fatalf("open once the brokers answer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	checkStreamWorks(t, s, "recovered")
}

// TestOpenAfterClose opens, closes and opens one stream value: the handles
// taken before the Close stay closed, those taken after the second Open
// work.
func TestOpenAfterClose(t *testing.T) {
	s := openStream(t, map[string]any{"checkpoint_topic": newTopic("checkpoints")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkStreamWorks(t, s, "first")
	old := s.Publisher()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("ping after close: %v, want ErrClosed", err)
	}
	if err := s.Open(ctx, core.Env{Name: "stream"}); err != nil {
		t.Fatalf("open after close: %v", err)
	}
	if err := s.Open(ctx, core.Env{Name: "stream"}); err == nil || !strings.Contains(err.Error(), "already open") {
		t.Fatalf("open of an open stream: %v, want already open", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after reopening: %v", err)
	}
	checkStreamWorks(t, s, "second")
	if err := old.Publish(newTopic("old"), testEvent("old", "k").ToMessage()); !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("publish on a handle taken before close: %v, want ErrClosed", err)
	}
}
