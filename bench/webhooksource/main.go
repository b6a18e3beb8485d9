// Command webhooksource is the webhook connector alone on net/http: the
// bench connector of bench/webhook.sh (HMAC-SHA256 preset, delivery ids
// deduplicated, 2xx once durable in the inbox, payloads pruned to the
// paths its rule reads), with a reader that acknowledges each batch at
// once in place of the runtime and a stream. Beside `durable` (the disk's
// floor) and `embedded` (the whole sidecar), `bench/webhook.sh source`
// says what the handler and the inbox cost and what the runtime and the
// stream add.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/tributary/tributary/adapters/webhook/webhooktest"
	"github.com/tributary/tributary/connectors/webhook"
	"github.com/tributary/tributary/core"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	dir := flag.String("state", "", "the connector's state directory (required)")
	flag.Parse()
	if err := run(*addr, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "webhooksource:", err)
		os.Exit(1)
	}
}

func run(addr, dir string) error {
	if dir == "" {
		return fmt.Errorf("-state is required")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src := webhook.New()
	err := src.Configure(core.NewConfig("bench_orders", map[string]any{
		"path":              "/hooks/bench",
		"max_pending":       1000000,
		"max_pending_bytes": 1 << 30,
		"verify": map[string]any{
			"preset": "hmac", "header": "X-Signature", "prefix": "sha256=", "secrets": []any{"bench-secret"},
		},
		"dedup": map[string]any{"header": "X-Delivery-Id"},
	}))
	if err != nil {
		return err
	}
	// The paths the bench rule reads (payload.event, payload.order.id,
	// customer, total, currency and len(payload.order.lines)).
	field := func(f ...string) core.PayloadPath { return core.PayloadPath{Fields: f} }
	lines := field("order", "lines")
	lines.LenOnly = true
	src.SetPayloadPaths([]core.PayloadPath{
		field("event"), field("order", "id"), field("order", "customer"),
		field("order", "total"), field("order", "currency"), lines,
	}, false)
	router := webhooktest.NewRouter()
	ctx := context.Background()
	if err := src.Open(ctx, core.Env{Name: "bench_orders", StateDir: dir, HTTP: router}, core.Position{}); err != nil {
		return err
	}
	go func() {
		for {
			chs, err := src.Read(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, "webhooksource: read:", err)
				os.Exit(1)
			}
			if len(chs) > 0 {
				if err := src.Ack(ctx, chs[len(chs)-1].Position); err != nil {
					fmt.Fprintln(os.Stderr, "webhooksource: ack:", err)
					os.Exit(1)
				}
			}
		}
	}()
	srv := &http.Server{Addr: addr, Handler: router, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}
