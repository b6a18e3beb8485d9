package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/plugin"
)

// link is what a source session and a sink session share: the plugin
// process and its connection, sending and one request at a time with its
// reply, the time it last spoke (which the watchdog checks), and how the
// session ends.
type link struct {
	// what names the plugin in messages ("plugin", "sink plugin"); after
	// says what follows when the process is lost.
	what, after string
	name        string
	proc        process
	conn        plugin.Conn
	log         *slog.Logger
	timeout     time.Duration
	caps        []string

	sendMu sync.Mutex
	// reqMu makes requests one at a time, so that a reply answers the
	// request waiting.
	reqMu    sync.Mutex
	replies  chan *plugin.Message
	lastSeen atomic.Int64 // unix nanoseconds

	once    sync.Once
	done    chan struct{} // closed when the session failed or ended
	err     error         // why; set before done is closed
	stop    chan struct{} // closed by close to end the loops and the watchdog
	stopped sync.Once
	wg      sync.WaitGroup
}

// init readies l for the process proc; replies is how many replies may
// wait.
func (l *link) init(what, after, name string, proc process, log *slog.Logger, timeout time.Duration, replies int) {
	l.what, l.after, l.name, l.proc, l.conn, l.log, l.timeout = what, after, name, proc, proc.Conn(), log, timeout
	l.replies = make(chan *plugin.Message, replies)
	l.done, l.stop = make(chan struct{}), make(chan struct{})
	l.lastSeen.Store(time.Now().UnixNano())
}

// fail ends the session with err, once.
func (l *link) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

var errSessionClosed = errors.New("plugin session closed")

// recv returns the plugin's next message, noting that it spoke; false once
// the connection is gone, the session then failed.
func (l *link) recv() (*plugin.Message, bool) {
	m, err := l.conn.Recv()
	if err != nil {
		select {
		case <-l.stop:
			l.fail(errSessionClosed)
		default:
			exit := l.proc.Exit()
			if exit == "" {
				exit = err.Error()
			}
			l.fail(fmt.Errorf("%s %q stopped answering (%s); %s", l.what, l.name, exit, l.after))
		}
		return nil, false
	}
	l.lastSeen.Store(time.Now().UnixNano())
	return m, true
}

// send writes one message now.
func (l *link) send(m *plugin.Message) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	if err := l.conn.Send(m); err != nil {
		return fmt.Errorf("send %s to %s %q: %w", m.Type, l.what, l.name, err)
	}
	return nil
}

// request sends m and waits for the reply of type want.
func (l *link) request(ctx context.Context, m *plugin.Message, want string) (*plugin.Message, error) {
	l.reqMu.Lock()
	defer l.reqMu.Unlock()
	if err := l.send(m); err != nil {
		return nil, err
	}
	select {
	case r := <-l.replies:
		if r.Type != want {
			return nil, fmt.Errorf("%s %q answered %s with %s, want %s", l.what, l.name, m.Type, r.Type, want)
		}
		return r, nil
	case <-l.done:
		return nil, l.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %q did not answer %s: %w", l.what, l.name, m.Type, ctx.Err())
	}
}

// watchdog kills the process once it sent nothing for longer than the
// heartbeat timeout.
func (l *link) watchdog() {
	t := time.NewTicker(max(l.timeout/10, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.done:
			return
		case <-t.C:
			silent := time.Since(time.Unix(0, l.lastSeen.Load()))
			if silent > l.timeout {
				l.fail(fmt.Errorf("%s %q sent nothing for %s, past its heartbeat timeout of %s: killed as hung; %s", l.what, l.name, silent.Round(time.Millisecond), l.timeout, l.after))
				l.proc.Kill()
				return
			}
		}
	}
}

// close asks the plugin to close (unless the session already ended),
// waits for its answer within the heartbeat timeout, and stops the
// process, killing it when ctx ends first. It is called once, with
// before, when not nil, run just before the close request.
func (l *link) close(ctx context.Context, before func()) error {
	var err error
	select {
	case <-l.done:
	default:
		if before != nil {
			before()
		}
		cctx, cancel := context.WithTimeout(ctx, l.timeout)
		r, rerr := l.request(cctx, &plugin.Message{Type: plugin.TypeClose}, plugin.TypeClosed)
		cancel()
		switch {
		case rerr != nil && !errors.Is(rerr, errSessionClosed):
			l.log.Warn(l.what+" did not close cleanly; stopping it", "err", rerr)
		case r != nil && r.Error != "":
			err = fmt.Errorf("%s %q close: %s", l.what, l.name, r.Error)
		}
	}
	l.stopped.Do(func() { close(l.stop) })
	// The sending side closes only while no send is in flight: gRPC's
	// CloseSend must not run concurrently with SendMsg. A send still under
	// way (a plugin that stopped reading) ends when the process stops.
	if l.sendMu.TryLock() {
		l.proc.CloseSend()
		l.sendMu.Unlock()
	}
	l.proc.Stop(ctx)
	l.fail(errSessionClosed)
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		l.proc.Kill()
		<-waited
	}
	return err
}
