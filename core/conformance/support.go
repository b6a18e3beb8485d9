package conformance

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"sync"

	"github.com/tributary/tributary/core"
	rt "github.com/tributary/tributary/core/runtime"
)

type serverRegistry struct {
	mu   sync.Mutex
	urls map[TB]string
}

// servers maps a test to its DefaultEnv server. It is the kit's only
// package-level state and holds test-scoped entries that are removed at
// cleanup.
var servers = &serverRegistry{urls: map[TB]string{}}

func (s *serverRegistry) set(t TB, url string) {
	s.mu.Lock()
	s.urls[t] = url
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.urls, t)
		s.mu.Unlock()
	})
}

func (s *serverRegistry) get(t TB) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urls[t]
}

// identityMapper turns every change into one event carrying the change.
func identityMapper(connector string) rt.Mapper {
	return rt.MapperFunc(func(ch *core.Change) []rt.Output {
		data, err := ch.MarshalRaw()
		if err != nil {
			return []rt.Output{{Rule: "identity", Err: err, Reason: "rule_error"}}
		}
		return []rt.Output{{Rule: "identity", Event: &core.Event{
			ID:              core.EventID(connector, ch.Position, "identity"),
			Source:          "/tributary/" + connector,
			SpecVersion:     core.SpecVersion,
			Type:            "dev.tributary.conformance.changed",
			DataContentType: "application/json",
			Data:            json.RawMessage(data),
		}}}
	})
}

type goroutine struct {
	id    string
	stack string
}

func goroutines() map[string]bool {
	out := map[string]bool{}
	for _, g := range dump() {
		out[g.id] = true
	}
	return out
}

// ignoredStacks are goroutines the kit does not blame on the source: the
// test framework, HTTP clients' idle connections, and the kit's own server.
var ignoredStacks = []string{
	"testing.(*T).Run", "testing.tRunner", "testing.runTests", "testing.(*M).",
	"net/http.(*persistConn)", "net/http.(*Server).Serve", "net/http.(*conn).serve",
	"net/http/httptest.(*Server)", "os/signal.", "runtime.ensureSigM",
}

func leakedSince(base map[string]bool) []goroutine {
	var out []goroutine
	for _, g := range dump() {
		if base[g.id] || ignored(g.stack) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func ignored(stack string) bool {
	for _, s := range ignoredStacks {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

func dump() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []goroutine
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		s := string(block)
		if !strings.HasPrefix(s, "goroutine ") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(s, "goroutine "), " ")
		out = append(out, goroutine{id: id, stack: s})
	}
	return out
}

func joinStacks(gs []goroutine) string {
	var b strings.Builder
	for _, g := range gs {
		b.WriteString(g.stack)
		b.WriteString("\n\n")
	}
	return b.String()
}
