package sql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// silentListener accepts connections and never answers: a connect to it
// ends only when its context does.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

// TestOracleConnectCancelledMidway pings an Oracle address that never
// answers with a context that ends during the connect: Open's ping returns
// the context's error, and (under -race) go-ora's context watcher does not
// race with the connect.
func TestOracleConnectCancelledMidway(t *testing.T) {
	for _, open := range []struct {
		name string
		fn   func(string) (*sql.DB, error)
	}{
		{"detached", openOracle},
	} {
		t.Run(open.name, func(t *testing.T) {
			db, err := open.fn("oracle://app:pw@" + silentListener(t) + "/ERP")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = db.PingContext(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ping = %v, want the context's deadline", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("ping returned %v after its context ended", d)
			}
		})
	}
}

// fakeConnector connects when released and records what it was given.
type fakeConnector struct {
	release chan struct{}
	sawDone atomic.Bool
	closed  atomic.Int32
}

func (f *fakeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if ctx.Done() != nil {
		f.sawDone.Store(true)
	}
	<-f.release
	return fakeConn{f}, nil
}

func (f *fakeConnector) Driver() driver.Driver { return nil }

type fakeConn struct{ f *fakeConnector }

func (c fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("no statements") }
func (c fakeConn) Close() error                        { c.f.closed.Add(1); return nil }
func (c fakeConn) Begin() (driver.Tx, error)           { return nil, errors.New("no transactions") }

func TestDetachedConnector(t *testing.T) {
	t.Run("returns the connection", func(t *testing.T) {
		f := &fakeConnector{release: make(chan struct{})}
		close(f.release)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		conn, err := detachedConnector{f}.Connect(ctx)
		if err != nil || conn == nil {
			t.Fatalf("Connect = %v, %v; want a connection", conn, err)
		}
		if f.sawDone.Load() {
			t.Fatal("the wrapped connector got a context that can end")
		}
	})
	t.Run("stops waiting and closes the late connection", func(t *testing.T) {
		f := &fakeConnector{release: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		conn, err := detachedConnector{f}.Connect(ctx)
		if !errors.Is(err, context.Canceled) || conn != nil {
			t.Fatalf("Connect = %v, %v; want context.Canceled", conn, err)
		}
		close(f.release)
		deadline := time.Now().Add(5 * time.Second)
		for f.closed.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the connection made after the caller gave up was not closed")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
