package rest_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	connector "github.com/tributary/tributary/connectors/rest"
	"github.com/tributary/tributary/core"
)

// retriedStatuses is how the README and the retries field (what
// `tributary connectors` prints) name the statuses retried within a run.
const retriedStatuses = "network errors, 408, 429 and 5xx"

// TestRetriedStatusesAsDocumented checks which HTTP statuses a run retries,
// and that the README and `tributary connectors` say the same.
func TestRetriedStatusesAsDocumented(t *testing.T) {
	tests := []struct {
		status  int
		retried bool
	}{
		{status: 400}, {status: 401}, {status: 403}, {status: 404}, {status: 409}, {status: 422},
		{status: 408, retried: true}, {status: 429, retried: true},
		{status: 500, retried: true}, {status: 501, retried: true}, {status: 502, retried: true},
		{status: 503, retried: true}, {status: 504, retried: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			a := newAPI(t)
			a.fail = func(w http.ResponseWriter, r *http.Request) bool {
				w.WriteHeader(tc.status)
				return true
			}
			v := cursorValues(a.srv.URL + "/none/items")
			v["retries"] = 2
			v["retry_max_wait"] = "10ms"
			s := newSource(t, v)
			open(t, s, testEnv(t), core.Position{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.Read(ctx); err == nil {
				t.Fatalf("Read() succeeded against an API answering %d", tc.status)
			}
			want := 1
			if tc.retried {
				want = 3
			}
			if got := a.count(); got != want {
				t.Fatalf("status %d: %d requests, want %d (retried: %v)", tc.status, got, want, tc.retried)
			}
		})
	}

	var doc string
	for _, f := range core.FieldsOf[connector.Config]() {
		if f.Name == "retries" {
			doc = f.Doc
		}
	}
	if !strings.Contains(doc, retriedStatuses) {
		t.Errorf("the retries field's doc %q does not say %q", doc, retriedStatuses)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(strings.Fields(string(readme)), " "), retriedStatuses) {
		t.Errorf("README.md does not say %q are retried", retriedStatuses)
	}
}

// TestNoRetries: retries: 0 sends a failed request once; the run fails at
// once rather than retrying as many times as the default allows.
func TestNoRetries(t *testing.T) {
	a := newAPI(t)
	a.fail = func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	v := cursorValues(a.srv.URL + "/none/items")
	v["retries"] = 0
	s := newSource(t, v)
	open(t, s, testEnv(t), core.Position{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Read(ctx); err == nil {
		t.Fatal("Read() succeeded against an API answering 503")
	}
	if got := a.count(); got != 1 {
		t.Fatalf("%d requests with retries: 0, want 1", got)
	}
}
