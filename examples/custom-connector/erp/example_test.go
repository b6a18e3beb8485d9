package erp_test

// The connector-writing tutorial, as runnable examples. `go test` runs them
// and checks their output, so the tutorial always compiles and stays true.
//
// Step 1 (Example_configure): declare the configuration (erp.Config: one
// tagged field per key) and validate it.
// Step 2 (Example_read): open the source and read changes with positions.
// Step 3 (Example_resume): reopen from a committed position.
// Step 4 (Example_runtime): run the connector in the runtime with YAML-style
// rules, as the sidecar does.
// Step 5 (Example_registry): register the type so a custom sidecar finds it.
// Bonus (Example_sourceFunc): the smallest connector, a plain function.

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tributary/tributary/core"
	"github.com/tributary/tributary/core/memstream"
	"github.com/tributary/tributary/core/rules"
	"github.com/tributary/tributary/core/runtime"
	"github.com/tributary/tributary/examples/custom-connector/erp"
)

// Configure decodes the YAML `config:` block strictly into the typed
// Config, whose tags declare each key once: keys left out take their
// declared defaults (poll_interval and timeout here), a key that is
// written is checked as written (batch_size 0 is out of range, not the
// default). It reports every problem at once, each as a *core.FieldError
// naming the key, which the config loader turns into a file, line and
// column.
func Example_configure() {
	src := erp.New()
	err := src.Configure(core.NewConfig("erp_orders", map[string]any{
		"url":        "erp.internal/export",
		"entity":     "invoices",
		"batch_size": 0,
	}))
	for _, e := range core.Flatten(err) {
		var fe *core.FieldError
		if errors.As(e, &fe) {
			fmt.Printf("%s: %v\n", fe.Path, fe.Err)
		}
	}
	// Output:
	// url: "erp.internal/export" is not an http(s) URL with a host
	// entity: "invoices" is not one of orders, customers
	// batch_size: must be between 1 and 10000, got 0
}

// Open connects to the system and starts after a position (zero: from the
// beginning of the export). Read blocks until changes exist and returns them
// in source order, each with the position that resumes after it.
func Example_read() {
	sim := erp.NewSimulator(fixedClock)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.Put("orders", "SO-1001", map[string]string{"status": "ACCEPTED", "total": "129.90"})
	sim.Put("orders", "SO-1001", map[string]string{"status": "SHIPPED", "total": "129.90"})
	sim.Delete("orders", "SO-0999")

	ctx := context.Background()
	src := erp.New()
	if err := src.Configure(core.NewConfig("erp_orders", map[string]any{"url": srv.URL})); err != nil {
		fmt.Println(err)
		return
	}
	if err := src.Open(ctx, core.Env{Name: "erp_orders"}, core.Position{}); err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close(ctx)
	changes, err := src.Read(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ch := range changes {
		fmt.Println(ch.Op, ch.Key["id"], ch.After["status"], ch.Position)
	}
	// Output:
	// create SO-1001 ACCEPTED v1:1
	// update SO-1001 SHIPPED v1:2
	// delete SO-0999 <nil> v1:3
}

// The runtime acks a position once every event before it is durable and
// its checkpoint stored; after a restart it opens the source from that
// position, and the source reads only what came after.
func Example_resume() {
	sim := erp.NewSimulator(fixedClock)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	for i := 1; i <= 4; i++ {
		sim.Put("orders", fmt.Sprintf("SO-%d", i), map[string]string{"status": "ACCEPTED"})
	}
	ctx := context.Background()
	committed := core.Position{Version: erp.PositionVersion, Data: []byte("2")}

	src := erp.New()
	_ = src.Configure(core.NewConfig("erp_orders", map[string]any{"url": srv.URL}))
	if err := src.Open(ctx, core.Env{}, committed); err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close(ctx)
	changes, _ := src.Read(ctx)
	for _, ch := range changes {
		fmt.Println(ch.Key["id"])
	}
	// Output:
	// SO-3
	// SO-4
}

// In the sidecar, the runtime drives the source, maps each change with the
// connector's emit rules into CloudEvents, publishes them and commits the
// checkpoint. Here the rules are compiled directly and the stream is the
// in-memory one.
func Example_runtime() {
	sim := erp.NewSimulator(fixedClock)
	srv := httptest.NewServer(sim)
	defer srv.Close()
	sim.Put("orders", "SO-1001", map[string]string{"status": "ACCEPTED"})
	sim.Delete("orders", "SO-0999")

	src := erp.New()
	if err := src.Configure(core.NewConfig("erp_orders", map[string]any{"url": srv.URL, "poll_interval": "10ms"})); err != nil {
		fmt.Println(err)
		return
	}
	set, err := rules.Compile("erp_orders", []core.Rule{
		{Name: "order_accepted", When: `op == "create"`, Type: "com.acme.order.accepted", Subject: "key.id", PartitionKey: "key.id",
			Data: map[string]any{"order_id": "key.id", "status": "after.status"}},
		{Name: "order_cancelled", When: `op == "delete"`, Type: "com.acme.order.cancelled", Subject: "key.id", PartitionKey: "key.id",
			Data: map[string]any{"order_id": "key.id"}},
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	stream := memstream.New()
	rt, err := runtime.New(runtime.Options{
		Stream:     stream,
		Connectors: []runtime.Connector{{Name: "erp_orders", Type: erp.Type, Source: src, Mapper: runtime.Rules(set)}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := stream.WaitLen(wctx, 2); err != nil {
		fmt.Println(err)
	}
	cancel()
	if err := <-done; err != nil {
		fmt.Println(err)
	}
	for _, p := range stream.All() {
		fmt.Println(p.Topic, p.Message.Metadata.Get("ce_subject"), string(p.Message.Payload))
	}
	// Output:
	// com.acme.order.accepted SO-1001 {"order_id":"SO-1001","status":"ACCEPTED"}
	// com.acme.order.cancelled SO-0999 {"order_id":"SO-0999"}
}

// A connector registers its type from init with core.RegisterSource, so a
// blank import compiles it into a sidecar (see cmd/acme-tributary). Tests
// build their own registry instead of touching the default one. The spec
// names a zero Config; the registry reads its tags into the field list
// behind validation, `tributary connectors` and the config JSON Schema.
func Example_registry() {
	reg := core.NewRegistry()
	reg.RegisterSource(erp.Spec())
	spec, _ := reg.Source("acme_erp_poll")
	fmt.Println(spec.Type)
	for _, f := range spec.Fields {
		line := []string{f.Name, string(f.Type)}
		switch {
		case f.Required:
			line = append(line, "required")
		case f.Default != nil:
			line = append(line, fmt.Sprintf("default %v", f.Default))
		}
		if f.Enum != nil {
			line = append(line, "one of "+strings.Join(f.Enum, ", "))
		}
		if f.Secret {
			line = append(line, "secret")
		}
		fmt.Println(strings.Join(line, " "))
	}
	// Output:
	// acme_erp_poll
	// url string required
	// entity string default orders one of orders, customers
	// poll_interval duration default 5s
	// batch_size int default 500
	// timeout duration default 10s
	// token string secret
}

// The smallest connector is a function: core.SourceFunc needs no
// configuration and no acknowledgement. It suits generators and tests.
func Example_sourceFunc() {
	n := 0
	src := core.SourceFunc(func(ctx context.Context) ([]core.Change, error) {
		n++
		return []core.Change{{
			Op:       core.OpMessage,
			Payload:  map[string]any{"tick": n},
			Position: core.Position{Version: 1, Data: fmt.Appendf(nil, "%d", n)},
		}}, nil
	})
	ctx := context.Background()
	_ = src.Configure(core.NewConfig("ticks", nil))
	_ = src.Open(ctx, core.Env{}, core.Position{})
	batch, _ := src.Read(ctx)
	fmt.Println(batch[0].Op, batch[0].Payload, batch[0].Position)
	// Output: message map[tick:1] v1:1
}

func fixedClock() time.Time { return time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC) }
