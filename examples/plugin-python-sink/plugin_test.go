package pluginpythonsink_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/connectors/plugin/plugintest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/servicetest"
)

// TestSinkConformance runs the sink kit against the Python ledger sink,
// through the sidecar's plugin sink, as `tributary plugin test` does. The
// kit's deliveries carry the mapped posting the ledger requires.
func TestSinkConformance(t *testing.T) {
	python := pythonOrSkip(t)
	script, err := filepath.Abs("ledger_sink.py")
	if err != nil {
		t.Fatal(err)
	}
	plugintest.RunSink(t, plugintest.SinkTarget{
		Name: "ledger", Spec: connplugin.SinkSpec(),
		Config: map[string]any{
			"command": python, "args": []any{script}, "transport": "jsonl", "heartbeat_timeout": "10s",
			"config": map[string]any{"file": filepath.Join(t.TempDir(), "postings.jsonl"), "require_account": false},
		},
	})
}

// TestLedgerPostings: a posting with an account is appended with its
// event's id; one without is refused for good, with the reason, and the
// later event of its key is not attempted.
func TestLedgerPostings(t *testing.T) {
	python := pythonOrSkip(t)
	script, _ := filepath.Abs("ledger_sink.py")
	file := filepath.Join(t.TempDir(), "postings.jsonl")
	s := connplugin.NewSink()
	err := s.Configure(core.NewConfig("ledger", map[string]any{
		"command": python, "args": []any{script}, "transport": "jsonl", "heartbeat_timeout": "10s",
		"config": map[string]any{"file": file},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), core.Env{Name: "ledger", StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ev := func(id, key string, posting map[string]any) core.Delivery {
		return core.Delivery{Event: &core.Event{ID: id, Source: "/billing", SpecVersion: core.SpecVersion, Type: "com.example.invoice.issued", Subject: key, PartitionKey: key, Time: time.Now()}, Data: posting}
	}
	rs := s.Write(context.Background(), []core.Delivery{
		ev("e1", "c1", map[string]any{"account": "4711", "amount": json.Number("129.90")}),
		ev("e2", "c2", map[string]any{"amount": json.Number("5")}),
		ev("e3", "c2", map[string]any{"account": "4712", "amount": json.Number("6")}),
	})
	if rs[0].Status != core.StatusDelivered || rs[1].Status != core.StatusFailed || rs[2].Status != core.StatusRetry {
		t.Fatalf("results %+v, want delivered, failed, retry", rs)
	}
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "no account") {
		t.Errorf("refusal %v does not say why", rs[1].Err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"e1","type":"com.example.invoice.issued","subject":"c1","posting":{"account":"4711","amount":"129.90"}}` + "\n"; string(b) != want {
		t.Errorf("postings %q, want %q", b, want)
	}
}

func pythonOrSkip(t *testing.T) string {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		if servicetest.Required() {
			t.Fatalf("python3 not found in PATH (%s=1): install Python 3 to test the Python example", servicetest.EnvRequire)
		}
		t.Skip("python3 not found in PATH: install Python 3 to test the Python example; `make test` requires it")
	}
	return python
}
