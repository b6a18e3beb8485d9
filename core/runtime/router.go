package runtime

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/tributary/tributary/core"
)

// Router is the sidecar's shared HTTP handler: connectors mount on it
// through core.Router and unmount when they close. It rebuilds an
// http.ServeMux on every change, so lookups take no lock.
//
// A pattern that was mounted once keeps answering after it is unmounted:
// 503 with Retry-After, so that a sender retries while its connector
// reopens (after an error, with backoff) instead of taking a 404 for a
// permanent answer.
type Router struct {
	mu       sync.Mutex
	handlers map[string]http.Handler
	live     map[string]bool
	mux      atomic.Pointer[http.ServeMux]
}

// unavailable answers for a connector that is closed and will reopen
// (restarting after an error, or paused by an operator).
var unavailable = retryLater("connector is restarting or paused; retry later")

// notOpen answers for a connector that has not opened yet (the stream is
// not open, or its first Open is being retried).
var notOpen = retryLater("connector is not open yet; retry later")

// retryLater answers 503 with Retry-After and the JSON error body webhook
// connectors answer with.
func retryLater(msg string) http.Handler {
	body := []byte(`{"error":"` + msg + `"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write(body)
	})
}

// Reserve answers pattern with 503 and Retry-After until a connector
// mounts it, so that a sender is told to retry from the moment the
// listener is up, before the stream and the connector are open. It is an
// error when pattern conflicts with a pattern already reserved or mounted.
func (r *Router) Reserve(pattern string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.handlers[pattern]; ok {
		return fmt.Errorf("http route %q is served by two connectors", pattern)
	}
	r.handlers[pattern] = notOpen
	if err := r.rebuild(); err != nil {
		delete(r.handlers, pattern)
		_ = r.rebuild()
		return err
	}
	return nil
}

// Has reports whether pattern is reserved or mounted (or was mounted).
func (r *Router) Has(pattern string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.handlers[pattern]
	return ok
}

// Release forgets pattern, reserved or unmounted, so that it answers 404
// again: its connector was removed. A pattern mounted now stays.
func (r *Router) Release(pattern string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[pattern] {
		return
	}
	delete(r.handlers, pattern)
	delete(r.live, pattern)
	_ = r.rebuild()
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	r := &Router{handlers: map[string]http.Handler{}, live: map[string]bool{}}
	r.mux.Store(http.NewServeMux())
	return r
}

var _ core.Router = (*Router)(nil)

// Handle mounts h at pattern. Mounting a pattern twice is an error.
func (r *Router) Handle(pattern string, h http.Handler) (func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[pattern] {
		return nil, fmt.Errorf("http route %q is already mounted by another connector", pattern)
	}
	prev, had := r.handlers[pattern]
	r.handlers[pattern] = h
	if err := r.rebuild(); err != nil {
		if had {
			r.handlers[pattern] = prev
		} else {
			delete(r.handlers, pattern)
		}
		_ = r.rebuild()
		return nil, err
	}
	r.live[pattern] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.live[pattern] = false
			r.handlers[pattern] = unavailable
			_ = r.rebuild()
		})
	}, nil
}

func (r *Router) rebuild() (err error) {
	mux := http.NewServeMux()
	defer func() {
		// ServeMux panics on conflicting patterns; report it as an error.
		if p := recover(); p != nil {
			err = fmt.Errorf("mount http route: %v", p)
		}
	}()
	for p, h := range r.handlers {
		mux.Handle(p, h)
	}
	r.mux.Store(mux)
	return nil
}

// ServeHTTP dispatches to the mounted handlers.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.Load().ServeHTTP(w, req)
}
