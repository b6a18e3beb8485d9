package erp_test

import (
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/examples/custom-connector/erp"
)

// erps gives each conformance check its own simulated ERP, since a source
// opened without a checkpoint reads the export from its beginning.
type erps struct {
	mu   sync.Mutex
	sims map[string]*fakeERP
}

type fakeERP struct {
	sim *erp.Simulator
	url string
	n   int
}

func (e *erps) get(t conformance.TB) *fakeERP {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.sims[t.Name()]; ok {
		return f
	}
	sim := erp.NewSimulator(nil)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f := &fakeERP{sim: sim, url: srv.URL}
	e.sims[t.Name()] = f
	return f
}

// TestConformance runs the kit every shipped connector runs against the
// custom connector and the simulated ERP.
func TestConformance(t *testing.T) {
	systems := &erps{sims: map[string]*fakeERP{}}
	conformance.Run(t, conformance.Harness{
		New: func(t conformance.TB) core.Source {
			src := erp.New()
			if err := src.Configure(core.NewConfig("conformance", map[string]any{
				"url": systems.get(t).url, "poll_interval": "10ms", "batch_size": 7,
			})); err != nil {
				t.Fatal(err)
			}
			return src
		},
		Produce: func(t conformance.TB, k int) {
			f := systems.get(t)
			for range k {
				f.n++
				f.sim.Put("orders", fmt.Sprintf("SO-%d", f.n), map[string]string{"status": "ACCEPTED"})
			}
		},
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
