// Package webhooktest provides what tests of webhook sources need: a
// core.Router over net/http's ServeMux that can unmount, like the sidecar's
// shared listener.
package webhooktest

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/tributary/tributary/core"
)

// Router is a core.Router serving mounted handlers through a ServeMux that
// is rebuilt on every mount and unmount. It is safe for concurrent use and
// is itself an http.Handler.
type Router struct {
	mu       sync.Mutex
	handlers map[string]http.Handler
	mux      atomic.Pointer[http.ServeMux]
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	r := &Router{handlers: map[string]http.Handler{}}
	r.mux.Store(http.NewServeMux())
	return r
}

// Handle mounts h at pattern. Mounting a pattern twice is an error.
func (r *Router) Handle(pattern string, h http.Handler) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.handlers[pattern]; dup {
		return nil, fmt.Errorf("pattern %q already mounted", pattern)
	}
	r.handlers[pattern] = h
	if err := r.rebuild(); err != nil {
		delete(r.handlers, pattern)
		_ = r.rebuild()
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			delete(r.handlers, pattern)
			_ = r.rebuild()
		})
	}, nil
}

func (r *Router) rebuild() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("mount: %v", p)
		}
	}()
	m := http.NewServeMux()
	for p, h := range r.handlers {
		m.Handle(p, h)
	}
	r.mux.Store(m)
	return nil
}

// ServeHTTP dispatches to the mounted handlers; unknown paths get 404.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.Load().ServeHTTP(w, req)
}

var _ core.Router = (*Router)(nil)
