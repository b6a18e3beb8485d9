// Command retailsim runs the legacy systems of the retail example (see
// package sim) and watches orders travel through them.
//
//	retailsim serve [flags]   start the systems, place the orders, keep serving until interrupted
//	retailsim watch [flags]   print each order's timeline from the sidecar's admin API as it moves
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tributary/tributary/examples/retail/sim"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: retailsim serve|watch [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "watch":
		err = watch(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: use serve or watch", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "retailsim:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	cfg := sim.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	fs.StringVar(&cfg.PostgresURL, "pg", env("RETAIL_PG_URL", "postgres://tributary:tributary@127.0.0.1:55432/tributary?sslmode=disable"), "order entry database")
	fs.StringVar(&cfg.MySQLDSN, "mysql", env("RETAIL_MYSQL_DSN", "tributary:tributary@tcp(127.0.0.1:53306)/tributary"), "CRM database")
	fs.StringVar(&cfg.Listen, "listen", env("RETAIL_SIM", "127.0.0.1:8091"), "billing API and warehouse endpoint")
	fs.StringVar(&cfg.WebhookURL, "webhook", "http://"+env("RETAIL_HTTP", "127.0.0.1:8090")+"/hooks/warehouse", "the sidecar's warehouse webhook")
	fs.StringVar(&cfg.WebhookSecret, "webhook-secret", env("RETAIL_WAREHOUSE_SECRET", "whsec_cmV0YWlsLWRlbW8td2FyZWhvdXNlLXNlY3JldA=="), "Standard Webhooks secret")
	fs.StringVar(&cfg.BillingToken, "billing-token", env("RETAIL_BILLING_TOKEN", "billing-demo-token"), "bearer token of the billing API")
	fs.StringVar(&cfg.Prefix, "prefix", "", "prefix of every id")
	fs.IntVar(&cfg.Orders, "orders", 10, "orders to place")
	fs.DurationVar(&cfg.Interval, "interval", 700*time.Millisecond, "pause between two orders")
	fs.IntVar(&cfg.CustomerEvery, "customer-every", 2, "a new customer every N orders")
	fs.IntVar(&cfg.CancelEvery, "cancel-every", 5, "cancel every N-th order (0: none)")
	fs.IntVar(&cfg.ThrottleEvery, "throttle-every", 7, "answer every N-th billing request 429 (0: never)")
	fs.DurationVar(&cfg.BillAfter, "bill-after", 1500*time.Millisecond, "time to invoice an order")
	fs.DurationVar(&cfg.PickAfter, "pick-after", 1500*time.Millisecond, "time to pick a billed order")
	fs.DurationVar(&cfg.ShipAfter, "ship-after", 1500*time.Millisecond, "time to ship a picked order")
	startAfter := fs.String("start-after", "", "place orders once this URL answers 200 (the sidecar's /readyz)")
	_ = fs.Parse(args)
	s, err := sim.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("billing API http://%s/billing/invoices, warehouse endpoint http://%s/warehouse/picking\n", s.Addr(), s.Addr())
	if *startAfter != "" {
		if err := waitOK(ctx, *startAfter, 2*time.Minute); err != nil {
			return err
		}
	}
	ids, err := s.Run(ctx)
	if err != nil && ctx.Err() == nil {
		return err
	}
	fmt.Printf("placed %d orders (%s .. %s); serving until interrupted\n", len(ids), first(ids), last(ids))
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Close(sctx)
}

// waitOK polls url until it answers 200.
func waitOK(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 within %s", url, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func first(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[0]
}

func last(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[len(ids)-1]
}

// instance is the part of GET /v1/entities/order/{id} the watch shows.
type instance struct {
	State    string `json:"state"`
	Timeline []struct {
		Type    string `json:"type"`
		Verdict string `json:"verdict"`
	} `json:"timeline"`
}

func watch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	admin := fs.String("admin", env("RETAIL_ADMIN", "127.0.0.1:9470"), "the sidecar's admin address")
	prefix := fs.String("prefix", "", "prefix of the order ids")
	orders := fs.Int("orders", 10, "orders to watch")
	wait := fs.Duration("for", 90*time.Second, "longest time to watch")
	_ = fs.Parse(args)
	deadline := time.Now().Add(*wait)
	shown := map[string]string{}
	for {
		done := 0
		for i := 1; i <= *orders; i++ {
			id := fmt.Sprintf("%sord-%04d", *prefix, i)
			in, ok := fetch(*admin, id)
			if !ok {
				continue
			}
			var steps []string
			for _, s := range in.Timeline {
				t := s.Type[strings.LastIndexByte(s.Type, '.')+1:]
				if s.Verdict != "" && s.Verdict != "ok" {
					t += "(" + s.Verdict + ")"
				}
				steps = append(steps, t)
			}
			line := fmt.Sprintf("%-16s %-20s %s", id, in.State, strings.Join(steps, " -> "))
			if shown[id] != line {
				fmt.Println(line)
				shown[id] = line
			}
			if in.State == "shipped" || in.State == "cancelled" {
				done++
			}
		}
		if done == *orders {
			fmt.Printf("all %d orders reached a final state\n", done)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d orders reached a final state within %s", done, *orders, *wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fetch(admin, id string) (instance, bool) {
	var in instance
	resp, err := http.Get("http://" + admin + "/v1/entities/order/" + id)
	if err != nil {
		return in, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return in, false
	}
	return in, json.NewDecoder(resp.Body).Decode(&in) == nil
}
