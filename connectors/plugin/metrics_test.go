package plugin_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
)

// restarts returns tributary_plugin_restarts_total{connector} of reg, and
// whether the series exists.
func restarts(t *testing.T, reg *prometheus.Registry, connector string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tributary_plugin_restarts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connector" && l.GetValue() == connector {
					return m.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// TestRestartsSeries: the first start of the plugin's process is not a
// restart; every start after it, on the same Source value the runtime
// reopens, is.
func TestRestartsSeries(t *testing.T) {
	journal := filepath.Join(t.TempDir(), "journal.jsonl")
	if err := appendJournal(journal, 3); err != nil {
		t.Fatal(err)
	}
	src := connplugin.New()
	if err := src.Configure(core.NewConfig("restarty", self(t, "jsonl", map[string]any{"journal": journal, "batch": 3}))); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	env := conformance.TestEnv(t, "restarty")
	env.Metrics = reg
	if _, ok := restarts(t, reg, "restarty"); ok {
		t.Fatal("the series exists before the plugin ever started")
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := src.Open(ctx, env, core.Position{}); err != nil {
			cancel()
			t.Fatalf("open %d: %v", i+1, err)
		}
		if _, err := src.Read(ctx); err != nil {
			t.Fatalf("read after open %d: %v", i+1, err)
		}
		if n, ok := restarts(t, reg, "restarty"); !ok || n != float64(i) {
			t.Errorf("after start %d: restarts = %v (present %v), want %d", i+1, n, ok, i)
		}
		if err := src.Close(ctx); err != nil {
			t.Errorf("close %d: %v", i+1, err)
		}
		cancel()
	}
}
