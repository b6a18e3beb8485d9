package rest_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/metricstest"
)

// scrape returns the series name{labels} of reg; see metricstest.Value.
func scrape(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return metricstest.Value(t, reg, name, labels)
}

// TestHTTPSeries: the answers of the API are counted by status code, the
// ones asking to slow down (429, 503 with Retry-After) once more, runs
// set the poll series, and the runtime's reopen of the same value keeps
// counting on the same series.
func TestHTTPSeries(t *testing.T) {
	a := newAPI(t)
	var mu sync.Mutex
	refused := 0
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if refused == 5 {
			return false
		}
		refused++
		w.Header().Set("Retry-After", "0")
		if refused == 5 {
			w.WriteHeader(http.StatusServiceUnavailable)
		} else {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		return true
	}
	a.put(1, 1, "n1")
	v := cursorValues(a.srv.URL + "/none/items")
	v["retries"] = 10
	s := newSource(t, v)
	reg := prometheus.NewRegistry()
	env := testEnv(t)
	env.Metrics = reg
	open(t, s, env, core.Position{})
	if got := names(readN(t, s, 1)); got[0] != "n1" {
		t.Fatalf("read %v", got)
	}
	code := func(c string) float64 {
		n, _ := scrape(t, reg, "tributary_http_responses_total", map[string]string{"connector": "api", "code": c})
		return n
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wait("a successful run", func() bool {
		n, _ := scrape(t, reg, "tributary_poll_last_success_timestamp_seconds", map[string]string{"connector": "api"})
		return n > 0
	})
	if c429, c503, c200 := code("429"), code("503"), code("200"); c429 != 4 || c503 != 1 || c200 < 1 {
		t.Fatalf("responses by code: 429 %v, 503 %v, 200 %v; want 4, 1 and at least 1", c429, c503, c200)
	}
	if n, _ := scrape(t, reg, "tributary_http_throttled_total", map[string]string{"connector": "api"}); n != 5 {
		t.Fatalf("throttled = %v, want 5", n)
	}
	if s.CaughtUp().IsZero() {
		t.Fatal("CaughtUp() is zero after a successful run")
	}

	ctx := context.Background()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ok := code("200")
	if err := s.Open(ctx, env, core.Position{}); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	wait("answers after the reopen on the same series", func() bool { return code("200") > ok })
	if c429 := code("429"); c429 != 4 {
		t.Fatalf("429 after the reopen = %v, want the 4 counted before", c429)
	}
}
