package main

import (
	"context"
	"os"
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
	"github.com/tributary/tributary/plugin"
)

// TestMain lets the sidecar start this test binary as the plugin: with the
// plugin cookie set it is exactly the built command.
func TestMain(m *testing.M) {
	if os.Getenv(plugin.EnvCookie) != "" {
		main()
		return
	}
	os.Exit(m.Run())
}

func pluginConfig(t testing.TB, inner map[string]any) map[string]any {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"command": exe, "transport": "grpc", "config": inner, "heartbeat_timeout": "2s"}
}

// TestThroughSidecar runs the plugin in the runtime, as the sidecar does,
// and checks the events its records become.
func TestThroughSidecar(t *testing.T) {
	dir := t.TempDir()
	extract := filepath.Join(dir, "ORDERS.DAT")
	if err := AppendRecords(extract, 3); err != nil {
		t.Fatal(err)
	}
	src := connplugin.New()
	if err := src.Configure(core.NewConfig("mainframe_orders", pluginConfig(t, map[string]any{"file": extract, "poll_interval": "20ms"}))); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Compile("mainframe_orders", []core.Rule{{
		Name: "order_accepted", Type: "com.acme.order.accepted", Subject: "key.id", PartitionKey: "key.id",
		Data: map[string]any{"order_id": "key.id", "amount_cents": "after.amount_cents", "currency": "after.currency", "record": "position"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := memstream.New()
	rt, err := runtime.New(runtime.Options{
		Stream:     st,
		Connectors: []runtime.Connector{{Name: "mainframe_orders", Type: connplugin.Type, Source: src, Mapper: runtime.Rules(set)}},
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
	if err := st.WaitLen(wctx, 3); err != nil {
		t.Fatalf("events: %v (status %+v)", err, rt.Status().Connectors)
	}
	if err := AppendRecords(extract, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.WaitLen(wctx, 5); err != nil {
		t.Fatalf("events after an append: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs := st.Messages("com.acme.order.accepted")
	var got []string
	for _, m := range msgs {
		got = append(got, m.Metadata.Get(core.HeaderSubject)+" "+string(m.Payload))
	}
	want := []string{
		`SO-0000001 {"amount_cents":1299,"currency":"EUR","order_id":"SO-0000001","record":"v1:1"}`,
		`SO-0000002 {"amount_cents":1300,"currency":"EUR","order_id":"SO-0000002","record":"v1:2"}`,
		`SO-0000003 {"amount_cents":1301,"currency":"EUR","order_id":"SO-0000003","record":"v1:3"}`,
		`SO-0000004 {"amount_cents":1299,"currency":"EUR","order_id":"SO-0000004","record":"v1:4"}`,
		`SO-0000005 {"amount_cents":1300,"currency":"EUR","order_id":"SO-0000005","record":"v1:5"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestConformance runs the kit `tributary plugin test` runs, through the
// sidecar, producing with the plugin's produce hook.
func TestConformance(t *testing.T) {
	plugintest.Run(t, plugintest.Target{
		Name: "mainframe_orders", Spec: connplugin.Spec(),
		// A relative file lives in each check's state directory.
		Config:       pluginConfig(t, map[string]any{"file": "ORDERS.DAT", "poll_interval": "10ms"}),
		Capabilities: conformance.Capabilities{Resume: true, Ordered: true},
	})
}
