// Package pythonplugin_test runs the Python plugin through the sidecar.
package pythonplugin_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	connplugin "github.com/tributary/tributary/connectors/plugin"
	"github.com/tributary/tributary/connectors/plugin/plugintest"
	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/conformance"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/core/servicetest"
)

func pluginConfig(t testing.TB, inner map[string]any) map[string]any {
	python, err := exec.LookPath("python3")
	if err != nil {
		// CI and `make test` require every part: a missing interpreter
		// fails there, and only a plain `go test` skips.
		if servicetest.Required() {
			t.Fatalf("python3 not found in PATH (%s=1): install Python 3 to run the Python plugin example", servicetest.EnvRequire)
		}
		t.Skip("python3 not found in PATH: install Python 3 to run the Python plugin example; `make test` requires it")
	}
	script, err := filepath.Abs("orders_plugin.py")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"command": python, "args": []any{script}, "transport": "jsonl", "config": inner, "heartbeat_timeout": "2s"}
}

// TestThroughSidecar runs the script in the runtime, as the sidecar does,
// and checks the events its rows become and the checkpoint.
func TestThroughSidecar(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "orders.csv")
	if err := os.WriteFile(export, []byte("id,status,total,currency\nSO-1,ACCEPTED,129.90,EUR\nSO-2,ACCEPTED,5.00,USD\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile("legacy_orders", []core.Rule{{
		Name: "order_accepted", When: `after.status == "ACCEPTED"`, Type: "com.acme.order.accepted",
		Subject: "key.id", PartitionKey: "key.id",
		Data: map[string]any{"order_id": "key.id", "total": "after.total", "currency": "after.currency"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := connplugin.New()
	if err := src.Configure(core.NewConfig("legacy_orders", pluginConfig(t, map[string]any{"file": export, "poll_interval_ms": 20}))); err != nil {
		t.Fatal(err)
	}
	st := memstream.New()
	rt, err := runtime.New(runtime.Options{
		Stream:     st,
		Connectors: []runtime.Connector{{Name: "legacy_orders", Type: connplugin.Type, Source: src, Mapper: runtime.Rules(set)}},
		StateDir:   dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := st.WaitLen(wctx, 2); err != nil {
		t.Fatalf("events: %v (status %+v)", err, rt.Status().Connectors)
	}
	// A row the legacy system appends later arrives too.
	f, err := os.OpenFile(export, os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("SO-3,ACCEPTED,7.50,EUR\n")
	f.Close()
	if err := st.WaitLen(wctx, 3); err != nil {
		t.Fatalf("events after an append: %v (status %+v)", err, rt.Status().Connectors)
	}
	for {
		cp, ok, _ := st.Checkpoints().Load(ctx, "legacy_orders")
		if ok && string(cp.Position.Data) == "3" {
			break
		}
		if wctx.Err() != nil {
			t.Fatalf("checkpoint %+v, want row 3", cp)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, m := range st.Messages("com.acme.order.accepted") {
		got = append(got, m.Metadata.Get(core.HeaderSubject)+" "+string(m.Payload))
	}
	want := []string{
		`SO-1 {"currency":"EUR","order_id":"SO-1","total":"129.90"}`,
		`SO-2 {"currency":"USD","order_id":"SO-2","total":"5.00"}`,
		`SO-3 {"currency":"EUR","order_id":"SO-3","total":"7.50"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConformance runs the kit `tributary plugin test` runs against the
// script, producing with its produce hook.
func TestConformance(t *testing.T) {
	plugintest.Run(t, plugintest.Target{
		Name: "legacy_orders", Spec: connplugin.Spec(),
		// A relative file lives in each check's state directory.
		Config:       pluginConfig(t, map[string]any{"file": "orders.csv", "poll_interval_ms": 10}),
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
