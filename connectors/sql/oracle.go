package sql

import (
	"context"
	"database/sql"
	"database/sql/driver"

	goora "github.com/sijms/go-ora/v2"
)

// openOracle opens an Oracle pool whose connects never see their context
// end. go-ora (v2.8.24, the newest) watches a connect's context in a
// goroutine that, when the context ends before the connect does, writes to
// and disconnects the session the connect is still using: a data race that
// can corrupt the connect. detachedConnector hands go-ora a context that
// never ends (go-ora bounds a connect by its own CONNECTION TIMEOUT, 10
// minutes unless the DSN says otherwise) and stops waiting when the
// caller's does. Queries on an open connection keep their context: go-ora
// breaks those through the connection itself.
func openOracle(dsn string) (*sql.DB, error) {
	c, err := goora.GetDefaultDriver().OpenConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(detachedConnector{c}), nil
}

// detachedConnector runs each connect of the wrapped connector without
// the caller's cancellation; see openOracle.
type detachedConnector struct{ driver.Connector }

// Connect returns the connection, or ctx's error when ctx ends first;
// a connection made after that is closed.
func (c detachedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	type result struct {
		conn driver.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := c.Connector.Connect(context.WithoutCancel(ctx))
		done <- result{conn, err}
	}()
	select {
	case r := <-done:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.conn != nil {
				_ = r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
