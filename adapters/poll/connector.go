package poll

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary/tributary/core"
)

// ErrNotConfigured is wrapped by the errors of a Connector used before its
// connector's Configure gave it a Source.
var ErrNotConfigured = errors.New("source used before Configure")

// ConnectorHooks are what a connector adds to the Source it delegates to.
// Every hook is optional.
type ConnectorHooks struct {
	// Open acquires the connector's resources (a database connection, a
	// file list) before the Source opens. When it fails nothing is opened
	// and its error is Open's.
	Open func(ctx context.Context, env core.Env) error
	// Close releases the connector's resources after the Source closes.
	// It is called by every Close of a configured Connector, including
	// before Open and a second time, and when the Source fails to open
	// after Open succeeded, so it must be safe to call when there is
	// nothing to release. Its error is Close's when the Source closed
	// without one.
	Close func() error
	// Status adds the connector's keys to the Source's status. It may be
	// called concurrently with everything else and must not block.
	Status func(st map[string]any)
	// Health checks the connector's resources once the Source reports
	// itself open.
	Health func(ctx context.Context) error
}

// binding is the Source a Connector delegates to and its hooks.
type binding struct {
	src   *Source
	hooks ConnectorHooks
}

// Connector is the part of a polling source connector that delegates to a
// Source: Open, Read, Ack, Close, Status and Health, each guarded against
// use before Configure. A connector embeds it, sets Type, and from its
// Configure builds the Source and hands it over with SetSource; its
// Configure is then the only core.Source method it writes.
//
// Read, Ack, Status and Health may be called concurrently with everything
// else; Open, Close and SetSource are serialised. The zero value is ready
// to use.
type Connector struct {
	// Type is the connector type ID that error messages name, such as
	// "sql_poll".
	Type string

	// life serialises Open, Close and SetSource.
	life  sync.Mutex
	bound atomic.Pointer[binding]
}

// SetSource makes c delegate to src, extended by hooks. A connector calls
// it from Configure, before Open; a Source already open is not closed.
func (c *Connector) SetSource(src *Source, hooks ConnectorHooks) {
	c.life.Lock()
	defer c.life.Unlock()
	c.bound.Store(&binding{src: src, hooks: hooks})
}

// name is the connector type ID errors name.
func (c *Connector) name() string {
	if c.Type == "" {
		return "poll"
	}
	return c.Type
}

// notConfigured returns the error of c used before SetSource.
func (c *Connector) notConfigured() error {
	return fmt.Errorf("%s %w", c.name(), ErrNotConfigured)
}

// Open acquires the connector's resources, then opens the Source from
// `from`. Before Configure it returns a fatal error. Opening twice without
// Close fails and leaves the open Source and its resources as they were.
func (c *Connector) Open(ctx context.Context, env core.Env, from core.Position) error {
	c.life.Lock()
	defer c.life.Unlock()
	b := c.bound.Load()
	if b == nil {
		return core.Fatal(c.notConfigured())
	}
	if b.src.isOpen() {
		return fmt.Errorf("%s source opened twice without Close", c.name())
	}
	b.src.register(env)
	if b.hooks.Open != nil {
		if err := b.hooks.Open(ctx, env); err != nil {
			return err
		}
	}
	if err := b.src.Open(ctx, env, from); err != nil {
		if b.hooks.Close != nil {
			_ = b.hooks.Close()
		}
		return err
	}
	return nil
}

// Read returns the next page of changes. Before Configure it returns a
// fatal error; after Close, ErrClosed.
func (c *Connector) Read(ctx context.Context) ([]core.Change, error) {
	b := c.bound.Load()
	if b == nil {
		return nil, core.Fatal(c.notConfigured())
	}
	return b.src.Read(ctx)
}

// Ack makes durable what the changes up to pos imply; see Source.Ack.
func (c *Connector) Ack(ctx context.Context, pos core.Position) error {
	b := c.bound.Load()
	if b == nil {
		return c.notConfigured()
	}
	return b.src.Ack(ctx, pos)
}

// Close stops polling, closes the Source and then releases the
// connector's resources, even when the Source failed to close in time.
// It is safe to call twice and before Open (or Configure); the connector
// may be opened again afterwards.
func (c *Connector) Close(ctx context.Context) error {
	c.life.Lock()
	defer c.life.Unlock()
	b := c.bound.Load()
	if b == nil {
		return nil
	}
	err := b.src.Close(ctx)
	if b.hooks.Close != nil {
		if cerr := b.hooks.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// Status reports the Source's status (schedule, watermark, pending
// changes) with the connector's keys, or configured: false before
// Configure.
func (c *Connector) Status() map[string]any {
	b := c.bound.Load()
	if b == nil {
		return map[string]any{"configured": false}
	}
	st := b.src.Status()
	if b.hooks.Status != nil {
		b.hooks.Status(st)
	}
	return st
}

// Health returns nil while the Source is open and the connector's own
// check passes. It returns ErrClosed when the Source is not open.
func (c *Connector) Health(ctx context.Context) error {
	b := c.bound.Load()
	if b == nil {
		return c.notConfigured()
	}
	if err := b.src.Health(ctx); err != nil {
		return err
	}
	if b.hooks.Health != nil {
		return b.hooks.Health(ctx)
	}
	return nil
}

// CaughtUp returns when the Source's last successful run finished, or the
// zero time before the first and before Configure; see Source.CaughtUp.
func (c *Connector) CaughtUp() time.Time {
	b := c.bound.Load()
	if b == nil {
		return time.Time{}
	}
	return b.src.CaughtUp()
}

// isOpen reports whether s holds its local state: opened and not closed.
func (s *Source) isOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st != nil
}

var (
	_ core.StatusReporter = (*Connector)(nil)
	_ core.HealthChecker  = (*Connector)(nil)
	_ core.Freshness      = (*Connector)(nil)
)
