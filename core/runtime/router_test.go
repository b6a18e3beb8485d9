package runtime_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tributary/tributary/core/runtime"
)

func TestRouterUnmountedRouteAsksToRetry(t *testing.T) {
	r := runtime.NewRouter()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	unmount, err := r.Handle("POST /hooks/a", ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Handle("POST /hooks/a", ok); err == nil {
		t.Fatal("a second connector mounted the same route")
	}
	serve := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("POST", path, nil))
		return w
	}
	if c := serve("/hooks/a").Code; c != http.StatusAccepted {
		t.Fatalf("mounted route answered %d", c)
	}
	unmount()
	unmount()
	w := serve("/hooks/a")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("unmounted route answered %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if c := serve("/hooks/never").Code; c != http.StatusNotFound {
		t.Fatalf("unknown route answered %d, want 404", c)
	}
	if _, err := r.Handle("POST /hooks/a", ok); err != nil {
		t.Fatalf("remount after reopen: %v", err)
	}
	if c := serve("/hooks/a").Code; c != http.StatusAccepted {
		t.Fatalf("remounted route answered %d", c)
	}
}

func TestRouterReservedRouteAsksToRetryUntilMounted(t *testing.T) {
	r := runtime.NewRouter()
	if err := r.Reserve("POST /hooks/b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve("POST /hooks/b"); err == nil {
		t.Fatal("two connectors reserved the same route")
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("POST", "/hooks/b", nil))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("reserved route answered %d, headers %v; want 503 with Retry-After and a JSON body", w.Code, w.Header())
	}
	if !strings.Contains(w.Body.String(), `"error":`) {
		t.Fatalf("body %q has no error", w.Body.String())
	}
	if _, err := r.Handle("POST /hooks/b", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })); err != nil {
		t.Fatalf("mount a reserved route: %v", err)
	}
	w = httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("POST", "/hooks/b", nil))
	if w.Code != http.StatusAccepted {
		t.Fatalf("mounted route answered %d", w.Code)
	}
}

func TestRouterRelease(t *testing.T) {
	r := runtime.NewRouter()
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	serve := func() int {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest("POST", "/hooks/a", nil))
		return w.Code
	}
	unmount, err := r.Handle("POST /hooks/a", ok)
	if err != nil {
		t.Fatal(err)
	}
	r.Release("POST /hooks/a")
	if c := serve(); c != http.StatusAccepted || !r.Has("POST /hooks/a") {
		t.Fatalf("a mounted route was released: %d", c)
	}
	unmount()
	r.Release("POST /hooks/a")
	if c := serve(); c != http.StatusNotFound || r.Has("POST /hooks/a") {
		t.Fatalf("a released route answered %d, want 404", c)
	}
	if err := r.Reserve("POST /hooks/a"); err != nil {
		t.Fatalf("reserve a released route: %v", err)
	}
}
