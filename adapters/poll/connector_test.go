package poll_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/tributary/tributary/adapters/poll"
	"github.com/tributary/tributary/core"
)

// hookLog records the hooks a Connector calls.
type hookLog struct {
	mu      sync.Mutex
	calls   []string
	openErr error
}

func (l *hookLog) add(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, name)
}

func (l *hookLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

func (l *hookLog) hooks() poll.ConnectorHooks {
	return poll.ConnectorHooks{
		Open: func(context.Context, core.Env) error {
			l.add("open")
			return l.openErr
		},
		Close: func() error {
			l.add("close")
			return nil
		},
		Status: func(st map[string]any) { st["extra"] = "yes" },
		Health: func(context.Context) error {
			l.add("health")
			return nil
		},
	}
}

// idleSource returns an unopened Source whose runs find nothing.
func idleSource(t *testing.T) *poll.Source {
	t.Helper()
	src, err := poll.NewSource(poll.Config{
		Schedule: "@every 1h",
		Mode:     poll.ModeEach,
		Fetcher: poll.FetcherFunc(func(context.Context, poll.Request, func([]poll.Record) error) error {
			return nil
		}),
	})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return src
}

func TestConnectorBeforeConfigure(t *testing.T) {
	ctx := context.Background()
	c := &poll.Connector{Type: "test_poll"}
	const want = "test_poll source used before Configure"
	err := c.Open(ctx, core.Env{}, core.Position{})
	if !errors.Is(err, poll.ErrNotConfigured) || !errors.Is(err, core.ErrFatal) || err.Error() != want {
		t.Errorf("Open = %v, want fatal %q", err, want)
	}
	if _, err := c.Read(ctx); !errors.Is(err, poll.ErrNotConfigured) || !errors.Is(err, core.ErrFatal) || err.Error() != want {
		t.Errorf("Read = %v, want fatal %q", err, want)
	}
	if err := c.Ack(ctx, core.Position{}); !errors.Is(err, poll.ErrNotConfigured) || errors.Is(err, core.ErrFatal) {
		t.Errorf("Ack = %v, want non-fatal ErrNotConfigured", err)
	}
	if err := c.Health(ctx); !errors.Is(err, poll.ErrNotConfigured) || errors.Is(err, core.ErrFatal) {
		t.Errorf("Health = %v, want non-fatal ErrNotConfigured", err)
	}
	if st := c.Status(); len(st) != 1 || st["configured"] != false {
		t.Errorf("Status = %v, want configured: false", st)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	var zero poll.Connector
	if _, err := zero.Read(ctx); err == nil || err.Error() != "poll source used before Configure" {
		t.Errorf("Read on a zero Connector = %v", err)
	}
}

func TestConnectorLifecycle(t *testing.T) {
	ctx := context.Background()
	var log hookLog
	c := &poll.Connector{Type: "test_poll"}
	c.SetSource(idleSource(t), log.hooks())

	// Configured, not opened.
	if err := c.Health(ctx); !errors.Is(err, poll.ErrClosed) {
		t.Errorf("Health before Open = %v, want ErrClosed", err)
	}
	if st := c.Status(); st["extra"] != "yes" || st["mode"] != "each" {
		t.Errorf("Status before Open = %v, want the Source's keys and the hook's", st)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close before Open = %v", err)
	}
	if got := log.take(); !slices.Equal(got, []string{"close"}) {
		t.Errorf("hooks of Close before Open = %v, want [close]", got)
	}

	if err := c.Open(ctx, core.Env{}, core.Position{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := c.Open(ctx, core.Env{}, core.Position{}); err == nil || err.Error() != "test_poll source opened twice without Close" {
		t.Errorf("second Open = %v, want opened twice", err)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("Health while open = %v", err)
	}
	if got := log.take(); !slices.Equal(got, []string{"open", "health"}) {
		t.Errorf("hooks of Open, Open, Health = %v, want [open health]: the second Open must not reopen resources", got)
	}

	for i := range 2 {
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close #%d = %v", i+1, err)
		}
	}
	if got := log.take(); !slices.Equal(got, []string{"close", "close"}) {
		t.Errorf("hooks of two Closes = %v, want [close close]", got)
	}
	if err := c.Health(ctx); !errors.Is(err, poll.ErrClosed) {
		t.Errorf("Health after Close = %v, want ErrClosed", err)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("Health after Close called hooks %v", got)
	}
	if st := c.Status(); st["extra"] != "yes" || st["unacked"] != 0 {
		t.Errorf("Status after Close = %v", st)
	}
	if _, err := c.Read(ctx); !errors.Is(err, poll.ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := c.Ack(ctx, core.Position{Version: 1, Data: []byte("x")}); err != nil {
		t.Errorf("Ack after Close = %v, want nil", err)
	}

	// Opened again after Close.
	if err := c.Open(ctx, core.Env{}, core.Position{}); err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestConnectorOpenFailures(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")

	// The connector's resources fail: the Source is not opened.
	log := hookLog{openErr: boom}
	c := &poll.Connector{Type: "test_poll"}
	c.SetSource(idleSource(t), log.hooks())
	if err := c.Open(ctx, core.Env{}, core.Position{}); !errors.Is(err, boom) {
		t.Errorf("Open = %v, want the hook's error", err)
	}
	if got := log.take(); !slices.Equal(got, []string{"open"}) {
		t.Errorf("hooks = %v, want [open]", got)
	}
	if err := c.Health(ctx); !errors.Is(err, poll.ErrClosed) {
		t.Errorf("Health after a failed Open = %v, want ErrClosed", err)
	}

	// The Source fails (its local state cannot be opened): the
	// connector's resources are released.
	log = hookLog{}
	c = &poll.Connector{Type: "test_poll"}
	c.SetSource(idleSource(t), log.hooks())
	err := c.Open(ctx, core.Env{StateDir: "/dev/null/not-a-dir"}, core.Position{})
	if err == nil {
		t.Fatal("Open with an unusable state directory = nil")
	}
	if got := log.take(); !slices.Equal(got, []string{"open", "close"}) {
		t.Errorf("hooks = %v, want [open close]", got)
	}
}

func TestConnectorCloseError(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	c := &poll.Connector{Type: "test_poll"}
	c.SetSource(idleSource(t), poll.ConnectorHooks{Close: func() error { return boom }})
	if err := c.Open(ctx, core.Env{}, core.Position{}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := c.Close(ctx); !errors.Is(err, boom) {
		t.Errorf("Close = %v, want the hook's error", err)
	}
}

// TestConnectorConcurrent runs Status, Health, Read and Ack against Open
// and Close, for the race detector.
func TestConnectorConcurrent(t *testing.T) {
	c := &poll.Connector{Type: "test_poll"}
	c.SetSource(idleSource(t), poll.ConnectorHooks{Status: func(st map[string]any) { st["extra"] = 1 }})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				c.Status()
				c.Health(ctx)
				c.Ack(ctx, core.Position{Version: 1, Data: []byte("x")})
				rctx, rcancel := context.WithCancel(ctx)
				rcancel()
				c.Read(rctx)
			}
		})
	}
	for range 20 {
		if err := c.Open(context.Background(), core.Env{}, core.Position{}); err != nil {
			t.Errorf("Open: %v", err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	cancel()
	wg.Wait()
}
