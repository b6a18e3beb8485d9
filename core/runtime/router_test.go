package runtime_test

import (
	"net/http"
	"net/http/httptest"
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
