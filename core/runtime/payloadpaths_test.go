package runtime_test

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
)

// prunerSource is a seqSource that records the payload paths it is told
// and whether it was told before it opened; its changes carry a payload
// pruned to payload.order.id, with the whole body as Raw.
type prunerSource struct {
	seqSource
	pmu        sync.Mutex
	paths      []core.PayloadPath
	all        bool
	calls      int
	beforeOpen bool
}

func (s *prunerSource) SetPayloadPaths(paths []core.PayloadPath, all bool) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.paths, s.all = paths, all
	s.calls++
	s.mu.Lock()
	s.beforeOpen = len(s.opens) == 0
	s.mu.Unlock()
}

func (s *prunerSource) Read(ctx context.Context) ([]core.Change, error) {
	chs, err := s.seqSource.Read(ctx)
	for i := range chs {
		chs[i].Op = core.OpMessage
		chs[i].Payload = map[string]any{"order": map[string]any{"id": "o-1"}}
		chs[i].PayloadPruned = true
		chs[i].Raw = []byte(`{"order":{"id":"o-1","note":"kept"},"extra":[1,2]}`)
	}
	return chs, err
}

var _ core.PayloadPruner = (*prunerSource)(nil)

func TestSourceIsToldPayloadPathsBeforeOpen(t *testing.T) {
	set, err := rules.Compile("orders", []core.Rule{{
		Name: "refused", Type: "com.example.order.refused",
		When: `deadLetter("refused " + payload.order.id)`,
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		mapper    runtime.Mapper
		wantPaths []core.PayloadPath
		wantAll   bool
	}{
		{name: "rules", mapper: runtime.Rules(set), wantPaths: []core.PayloadPath{{Fields: []string{"order", "id"}}}},
		{name: "another mapper", mapper: mapper("orders", 0), wantAll: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memstream.New()
			src := &prunerSource{seqSource: seqSource{total: 1}}
			if tt.wantAll {
				src.seqSource.total = 0
			}
			_, stop := startRuntime(t, st, runtime.Connector{Name: "orders", Source: src, Mapper: tt.mapper})
			waitFor(t, "Open", func() bool {
				src.mu.Lock()
				defer src.mu.Unlock()
				return len(src.opens) > 0
			})
			if !tt.wantAll {
				waitFor(t, "the dead letter", func() bool { return len(st.Messages("tributary.deadletter")) == 1 })
			}
			stop()
			src.pmu.Lock()
			defer src.pmu.Unlock()
			if src.calls == 0 || !src.beforeOpen {
				t.Fatalf("SetPayloadPaths called %d times, before Open: %v", src.calls, src.beforeOpen)
			}
			if src.all != tt.wantAll || !reflect.DeepEqual(src.paths, tt.wantPaths) {
				t.Fatalf("told paths %v all %v, want %v all %v", src.paths, src.all, tt.wantPaths, tt.wantAll)
			}
			if tt.wantAll {
				return
			}
			var rec runtime.DeadLetter
			if err := json.Unmarshal(st.Messages("tributary.deadletter")[0].Payload, &rec); err != nil {
				t.Fatal(err)
			}
			var ch struct {
				Payload map[string]any `json:"payload"`
			}
			if err := json.Unmarshal(rec.Change, &ch); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"order": map[string]any{"id": "o-1", "note": "kept"}, "extra": []any{1.0, 2.0}}
			if rec.Error == "" || !reflect.DeepEqual(ch.Payload, want) {
				t.Errorf("dead letter %q carries payload %v, want the whole %v", rec.Error, ch.Payload, want)
			}
		})
	}
}
