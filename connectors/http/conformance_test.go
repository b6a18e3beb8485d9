package http_test

import (
	"net/http"
	"sync"
	"testing"

	sink "github.com/tributary/tributary/connectors/http"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// target is the endpoint the sink kit delivers to: it takes every request,
// answers 503 to the events it is told to fail, 422 to those it is told to
// refuse, and nothing at all while it is stalled.
type target struct {
	mu      sync.Mutex
	took    []conformance.Delivered
	failing map[string]int // event id -> status
	stalled chan struct{}  // closed by recover; nil when not stalled
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("Webhook-Id")
	tg.mu.Lock()
	stalled, status := tg.stalled, tg.failing[id]
	tg.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	tg.mu.Lock()
	tg.took = append(tg.took, conformance.Delivered{ID: id})
	tg.mu.Unlock()
}

func (tg *target) received() []conformance.Delivered {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]conformance.Delivered(nil), tg.took...)
}

func (tg *target) answer(ids []string, status int) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for _, id := range ids {
		tg.failing[id] = status
	}
}

func (tg *target) stall() {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.stalled == nil {
		tg.stalled = make(chan struct{})
	}
}

func (tg *target) recover() {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	clear(tg.failing)
	if tg.stalled != nil {
		close(tg.stalled)
		tg.stalled = nil
	}
}

// TestSinkConformance runs the sink kit against the http sink delivering
// signed CloudEvents to a local endpoint.
func TestSinkConformance(t *testing.T) {
	tg := &target{failing: map[string]int{}}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ []byte) { tg.ServeHTTP(w, r) })
	conformance.RunSink(t, conformance.SinkHarness{
		New: func(t conformance.TB) core.Sink {
			s := sink.New()
			err := s.Configure(core.NewConfig("conformance", map[string]any{
				"url":             rc.URL + "/hooks",
				"signing_secrets": []any{swSecret},
				"max_concurrency": 4,
			}))
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			return s
		},
		Received: tg.received,
		Fail:     func(_ conformance.TB, ids []string) { tg.answer(ids, http.StatusServiceUnavailable) },
		Refuse:   func(_ conformance.TB, ids []string) { tg.answer(ids, http.StatusUnprocessableEntity) },
		Stall:    func(conformance.TB) { tg.stall() },
		Recover:  func(conformance.TB) { tg.recover() },
		Capabilities: conformance.SinkCapabilities{
			Targeted: true,
		},
	})
}
